//! The `/ipfs/{cid}` handler: content negotiation, verification, ranges, CAR streaming.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hamt::{BlockStore, Cid, Codec, Error as HamtError, parse_cid, verify};
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::compat::TokioAsyncWriteCompatExt as _;

use crate::metrics::Metrics;
use crate::range::{self, Wanted};

/// Shared by every request.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) store: Arc<dyn BlockStore>,
    pub(crate) token: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) max_file_bytes: u64,
    pub(crate) metrics: Metrics,
    /// One permit per request in flight; a CAR stream keeps its permit until it ends.
    pub(crate) permits: Arc<tokio::sync::Semaphore>,
}

const IMMUTABLE: &str = "public, max-age=29030400, immutable";
const RAW: &str = "application/vnd.ipld.raw";
const CAR: &str = "application/vnd.ipld.car";

/// The representations this gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Plain `GET`: a raw block's bytes, a UnixFS file's bytes, a DAG-CBOR block as is.
    Plain,
    /// `application/vnd.ipld.raw`: the block exactly.
    Raw,
    /// `application/vnd.ipld.car`: every block of the DAG.
    Car,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Params {
    format: Option<String>,
}

/// A response with a status and a plain-text reason.
fn problem(status: StatusCode, reason: impl Into<String>) -> Response {
    let mut r = (status, reason.into()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn authorized(state: &State, headers: &HeaderMap) -> bool {
    let Some(token) = &state.token else {
        return true;
    };
    header_str(headers, header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| same_secret(given.trim(), token))
}

fn unauthorized() -> Response {
    let mut r = problem(StatusCode::UNAUTHORIZED, "a bearer token is required");
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// `?format=` wins over `Accept`; an `Accept` without a type we serve means plain.
fn negotiate(params: &Params, headers: &HeaderMap) -> Result<Format, Response> {
    if let Some(format) = params.format.as_deref() {
        return match format {
            "raw" => Ok(Format::Raw),
            "car" => Ok(Format::Car),
            other => Err(problem(
                StatusCode::BAD_REQUEST,
                format!("unsupported format {other:?}: this gateway serves raw and car"),
            )),
        };
    }
    let accept = header_str(headers, header::ACCEPT).unwrap_or_default();
    for item in accept.split(',') {
        let media = item.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case(RAW) {
            return Ok(Format::Raw);
        }
        if media.eq_ignore_ascii_case(CAR) {
            return Ok(Format::Car);
        }
    }
    Ok(Format::Plain)
}

/// Maps a store failure to a response, logging what the client is not told.
fn store_error(state: &State, cid: &Cid, e: &HamtError) -> Response {
    match e {
        HamtError::NotFound { .. } | HamtError::Offline { .. } => {
            problem(StatusCode::NOT_FOUND, format!("block {cid} not found"))
        }
        HamtError::Corrupt { .. } => {
            state.metrics.corrupt();
            tracing::error!(%cid, "stored block failed verification against its CID; not served");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("block {cid} failed verification"),
            )
        }
        HamtError::UnsupportedHash { .. } | HamtError::UnsupportedCodec { .. } => {
            problem(StatusCode::BAD_REQUEST, e.to_string())
        }
        HamtError::Decode { .. } => problem(StatusCode::NOT_IMPLEMENTED, e.to_string()),
        HamtError::Timeout { .. } => problem(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
        e if e.is_temporary() => {
            tracing::warn!(%cid, error = %e, "temporary store failure");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "store temporarily unavailable",
            )
        }
        e => {
            tracing::error!(%cid, error = %e, "store failure");
            problem(StatusCode::BAD_GATEWAY, "store failure")
        }
    }
}

/// `GET` and `HEAD` of `/ipfs/{cid}`.
pub(crate) async fn ipfs(
    AxumState(state): AxumState<Arc<State>>,
    method: Method,
    Path(path): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let response = if authorized(&state, &headers) {
        let Ok(permit) = state.permits.clone().acquire_owned().await else {
            return problem(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
        };
        let mut permit = Some(permit);
        match tokio::time::timeout(
            state.timeout,
            serve(&state, &method, &path, &params, &headers, &mut permit),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => problem(
                StatusCode::GATEWAY_TIMEOUT,
                "the store did not answer in time",
            ),
        }
    } else {
        unauthorized()
    };
    let len = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    state.metrics.record(response.status().as_u16(), len);
    tracing::debug!(%method, path, status = response.status().as_u16(), "request");
    response
}

async fn serve(
    state: &State,
    method: &Method,
    path: &str,
    params: &Params,
    headers: &HeaderMap,
    permit: &mut Option<OwnedSemaphorePermit>,
) -> Response {
    let (cid_text, rest) = path.split_once('/').unwrap_or((path, ""));
    if cid_text.len() > 512 {
        return problem(StatusCode::BAD_REQUEST, "not a CID: too long");
    }
    let cid = match parse_cid(cid_text) {
        Ok(cid) => cid,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if !hamt::can_verify(&cid) {
        return problem(
            StatusCode::BAD_REQUEST,
            format!(
                "multihash {:#x} cannot be verified here; this gateway serves BLAKE3 and SHA2-256 blocks",
                cid.hash().code()
            ),
        );
    }
    if !rest.is_empty() {
        return problem(
            StatusCode::BAD_REQUEST,
            "paths below a CID are not served: this is a trustless gateway of blocks and files",
        );
    }
    let format = match negotiate(params, headers) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let etag = match format {
        Format::Plain => format!("\"{cid}\""),
        Format::Raw => format!("\"{cid}.raw\""),
        Format::Car => format!("\"{cid}.car\""),
    };
    if header_str(headers, header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return with_common(StatusCode::NOT_MODIFIED.into_response(), &cid, &etag);
    }
    let response = match format {
        Format::Car => car(state, cid, method, permit.take()).await,
        Format::Raw | Format::Plain => {
            let (body, content_type) = match fetch(state, &cid, format).await {
                Ok(found) => found,
                Err(r) => return r,
            };
            let mut r = ranged(body, method, headers);
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            if format == Format::Raw
                && let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{cid}.bin\""))
            {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
    };
    if response.status().is_success() {
        with_common(response, &cid, &etag)
    } else {
        response
    }
}

/// The body and content type of a raw or plain response, verified.
async fn fetch(
    state: &State,
    cid: &Cid,
    format: Format,
) -> Result<(Bytes, &'static str), Response> {
    let codec = Codec::of(cid).map_err(|e| problem(StatusCode::BAD_REQUEST, e.to_string()))?;
    if format == Format::Plain && codec == Codec::DagPb {
        let file = hamt::unixfs::cat(&state.store, cid, state.max_file_bytes)
            .await
            .map_err(|e| store_error(state, cid, &e))?;
        return Ok((file, "application/octet-stream"));
    }
    // An identity CID (a value a HAMT inlined) carries its bytes: there is no block.
    let block = match hamt::inline_data(cid) {
        Some(data) => Bytes::copy_from_slice(data),
        None => state
            .store
            .get(cid)
            .await
            .map_err(|e| store_error(state, cid, &e))?,
    };
    // Checked here too: not every store verifies what it returns.
    verify(cid, &block).map_err(|e| store_error(state, cid, &e))?;
    let content_type = match (format, codec) {
        (Format::Raw, _) => RAW,
        (_, Codec::DagCbor) => "application/vnd.ipld.dag-cbor",
        (_, Codec::DagPb) => "application/vnd.ipld.dag-pb",
        _ => "application/octet-stream",
    };
    Ok((block, content_type))
}

/// A 200, 206 or 416 response for `body` as the `Range` header asks.
fn ranged(body: Bytes, method: &Method, headers: &HeaderMap) -> Response {
    let len = body.len() as u64;
    let (status, part, content_range) = match range::parse(header_str(headers, header::RANGE), len)
    {
        Wanted::Whole => (StatusCode::OK, body, None),
        Wanted::Part(r) => {
            let slice = body.slice(
                usize::try_from(r.start).unwrap_or(usize::MAX)
                    ..usize::try_from(r.end).unwrap_or(usize::MAX),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                slice,
                Some(format!("bytes {}-{}/{len}", r.start, r.end - 1)),
            )
        }
        Wanted::Unsatisfiable => {
            let mut r = problem(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let part_len = part.len();
    let mut r = if *method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(part))
    };
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(part_len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(v) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::CONTENT_RANGE, v);
    }
    r
}

/// Streams a CAR of every block under `cid`. The root is fetched first so that a missing
/// root is a 404, not a truncated 200.
async fn car(
    state: &State,
    cid: Cid,
    method: &Method,
    permit: Option<OwnedSemaphorePermit>,
) -> Response {
    match state.store.get(&cid).await.and_then(|b| verify(&cid, &b)) {
        Ok(()) => {}
        Err(e) => return store_error(state, &cid, &e),
    }
    let mut r = if *method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        let (writer, reader) = tokio::io::duplex(256 << 10);
        let store = state.store.clone();
        tokio::spawn(async move {
            // The stream counts against the concurrency limit until it ends.
            let _permit = permit;
            if let Err(e) = hamt::car::export_car(&store, cid, writer.compat_write()).await {
                // The status is sent; cutting the stream short tells the client.
                tracing::error!(%cid, error = %e, "CAR export failed midway");
            }
        });
        Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(reader)))
    };
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.ipld.car; version=1; order=unk; dups=n"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{cid}.car\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

fn with_common(mut r: Response, cid: &Cid, etag: &str) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("/ipfs/{cid}")) {
        h.insert("x-ipfs-path", v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    r
}

/// `GET /metrics`.
pub(crate) async fn metrics(
    AxumState(state): AxumState<Arc<State>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let mut r = state.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// Everything else.
pub(crate) async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "not found: this gateway serves GET /ipfs/{cid} and /metrics",
    )
}
