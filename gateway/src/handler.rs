//! The `/ipfs/{cid}[/{key…}]` handler: what the request asks ([`crate::request`]), where a
//! path leads ([`crate::resolve`]), and the response: a block or a file's bytes with ranges,
//! the block exactly, or a CAR stream ([`crate::car`]). Every block is verified before it
//! is sent.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hamt::{BlockStore, Cid, Codec, Error as HamtError, HashAlg, parse_cid, verify};
use tokio::sync::OwnedSemaphorePermit;

use crate::car::{self, CarJob};
use crate::metrics::Metrics;
use crate::range::{self, Wanted as RangeWanted};
use crate::request::{
    self, CarOptions, Format, Params, RAW, Refusal, Scope, Wanted, content_path, negotiate,
};
use crate::resolve::{Miss, Resolved, resolve};

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

/// A response with a status and a plain-text reason.
fn problem(status: StatusCode, reason: impl Into<String>) -> Response {
    let mut r = (status, reason.into()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn refuse(r: Refusal) -> Response {
    problem(r.status, r.reason)
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

/// Maps a store failure to a response, logging what the client is not told.
fn store_error(state: &State, cid: &Cid, e: &HamtError) -> Response {
    match e {
        HamtError::NotFound { cid: missing } | HamtError::Offline { cid: missing } => {
            if missing == cid {
                problem(StatusCode::NOT_FOUND, format!("block {cid} not found"))
            } else {
                problem(
                    StatusCode::NOT_FOUND,
                    format!("block {missing}, on the path below {cid}, not found"),
                )
            }
        }
        HamtError::Corrupt { cid: bad } => {
            state.metrics.corrupt();
            tracing::error!(cid = %bad, "stored block failed verification against its CID; not served");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("block {bad} failed verification"),
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

/// `GET` and `HEAD` of `/ipfs/{cid}[/{key…}]`.
pub(crate) async fn ipfs(
    AxumState(state): AxumState<Arc<State>>,
    method: Method,
    uri: Uri,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let response = if authorized(&state, &headers) {
        let Ok(permit) = state.permits.clone().acquire_owned().await else {
            return problem(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
        };
        let mut permit = Some(permit);
        let request = Request {
            method: &method,
            uri: &uri,
            params: &params,
            headers: &headers,
        };
        match tokio::time::timeout(state.timeout, serve(&state, request, &mut permit)).await {
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
    tracing::debug!(%method, path = uri.path(), status = response.status().as_u16(), "request");
    response
}

/// The parts of a request the handlers read.
#[derive(Clone, Copy)]
struct Request<'a> {
    method: &'a Method,
    uri: &'a Uri,
    params: &'a Params,
    headers: &'a HeaderMap,
}

impl Request<'_> {
    fn head(&self) -> bool {
        *self.method == Method::HEAD
    }
}

async fn serve(
    state: &Arc<State>,
    req: Request<'_>,
    permit: &mut Option<OwnedSemaphorePermit>,
) -> Response {
    if request::service_worker(req.headers) {
        return problem(
            StatusCode::BAD_REQUEST,
            "registering a service worker is refused: this gateway serves no scripts",
        );
    }
    let path = match content_path(req.uri.path()) {
        Ok(path) => path,
        Err(r) => return refuse(r),
    };
    if path.cid.len() > 512 {
        return problem(StatusCode::BAD_REQUEST, "not a CID: too long");
    }
    let cid = match parse_cid(path.cid) {
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
    let wanted = match negotiate(req.params, req.uri.query(), req.headers) {
        Ok(w) => w,
        Err(r) => return refuse(r),
    };
    // `only-if-cached`: answer only from what the store holds, without further work.
    if request::only_if_cached(req.headers) && hamt::inline_data(&cid).is_none() {
        match state.store.has(&cid).await {
            Ok(true) => {}
            Ok(false) => return StatusCode::PRECONDITION_FAILED.into_response(),
            Err(e) => return store_error(state, &cid, &e),
        }
    }
    let response = match path.key {
        None => serve_cid(state, req, cid, &wanted, permit).await,
        Some(key) => serve_key(state, req, cid, &key, &wanted, permit).await,
    };
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        with_common(response, req, &wanted)
    } else {
        response
    }
}

/// `/ipfs/{cid}` with no path.
async fn serve_cid(
    state: &Arc<State>,
    req: Request<'_>,
    cid: Cid,
    wanted: &Wanted,
    permit: &mut Option<OwnedSemaphorePermit>,
) -> Response {
    match wanted.format {
        Format::Car => {
            let etag = format!("\"{cid}{}\"", wanted.car.etag_suffix());
            if let Some(r) = not_modified(state, req, &cid, &etag).await {
                return r;
            }
            let block = match fetch_block(state, &cid).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            car_response(
                state,
                req,
                cid,
                Vec::new(),
                cid,
                block,
                wanted.car,
                permit,
                &etag,
            )
        }
        Format::Raw | Format::Plain => {
            let etag = match wanted.format {
                Format::Raw => format!("\"{cid}.raw\""),
                _ => format!("\"{cid}\""),
            };
            if let Some(r) = not_modified(state, req, &cid, &etag).await {
                return r;
            }
            bytes_response(state, req, &cid, wanted.format, None, &etag).await
        }
    }
}

/// `/ipfs/{root}/{key…}`: the value of `key` in the HAMT at `root`.
async fn serve_key(
    state: &Arc<State>,
    req: Request<'_>,
    root: Cid,
    key: &str,
    wanted: &Wanted,
    permit: &mut Option<OwnedSemaphorePermit>,
) -> Response {
    match Codec::of(&root) {
        Ok(Codec::DagCbor) => {}
        Ok(Codec::Raw) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("{root} is a raw block: there is no path below it"),
            );
        }
        Ok(Codec::DagPb) => {
            return problem(
                StatusCode::NOT_IMPLEMENTED,
                "UnixFS paths are not served: this gateway resolves paths through HAMT roots",
            );
        }
        Ok(_) => {
            return problem(
                StatusCode::NOT_IMPLEMENTED,
                "paths are resolved through HAMT (DAG-CBOR) roots only",
            );
        }
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.to_string()),
    }
    // A CAR's ETag names the root and the key, so it is known before any lookup.
    let car_etag = (wanted.format == Format::Car).then(|| {
        let digest = HashAlg::Blake3.digest(key.as_bytes());
        let hex = digest.digest()[..8].iter().fold(String::new(), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        });
        format!("\"{root}.path-{hex}{}\"", wanted.car.etag_suffix())
    });
    if let Some(etag) = &car_etag
        && let Some(r) = not_modified(state, req, &root, etag).await
    {
        return r;
    }
    let Resolved { path, value } = match resolve(&state.store, root, key).await {
        Ok(found) => found,
        Err(Miss::NoKey) => {
            return problem(
                StatusCode::NOT_FOUND,
                format!("no key {key:?} in the HAMT at {root}"),
            );
        }
        Err(Miss::IntoValue(prefix)) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("the path goes into the value of key {prefix:?}: values have no paths"),
            );
        }
        Err(Miss::NotHamt(reason)) => {
            return problem(
                StatusCode::NOT_IMPLEMENTED,
                format!(
                    "{root} is not a HAMT node ({reason}): paths through other DAG-CBOR are not served"
                ),
            );
        }
        Err(Miss::Store(e)) => return store_error(state, &root, &e),
    };
    match wanted.format {
        Format::Car => {
            let block = match fetch_block(state, &value).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let etag = car_etag.unwrap_or_default();
            car_response(
                state, req, root, path, value, block, wanted.car, permit, &etag,
            )
        }
        Format::Raw | Format::Plain => {
            let etag = match wanted.format {
                Format::Raw => format!("\"{value}.raw\""),
                _ => format!("\"{value}\""),
            };
            if let Some(r) = not_modified(state, req, &value, &etag).await {
                return r;
            }
            bytes_response(state, req, &value, wanted.format, Some(key), &etag).await
        }
    }
}

/// A 304 when `If-None-Match` names `etag` (or is `*` and `cid` is at hand).
async fn not_modified(state: &State, req: Request<'_>, cid: &Cid, etag: &str) -> Option<Response> {
    let matched = request::if_none_match(req.headers, etag)
        || (request::if_none_match_any(req.headers)
            && (hamt::inline_data(cid).is_some() || state.store.has(cid).await.unwrap_or(false)));
    matched.then(|| with_etag(StatusCode::NOT_MODIFIED.into_response(), etag))
}

fn with_etag(mut r: Response, etag: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// The verified block of `cid` (its own bytes for an identity CID).
async fn fetch_block(state: &State, cid: &Cid) -> Result<Bytes, Response> {
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
    Ok(block)
}

/// A raw or plain response: the block, or the bytes of a file, with ranges.
async fn bytes_response(
    state: &State,
    req: Request<'_>,
    cid: &Cid,
    format: Format,
    key: Option<&str>,
    etag: &str,
) -> Response {
    let codec = match Codec::of(cid) {
        Ok(c) => c,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let body = if format == Format::Plain && codec == Codec::DagPb {
        match hamt::unixfs::cat(&state.store, cid, state.max_file_bytes).await {
            Ok(file) => file,
            Err(e) => return store_error(state, cid, &e),
        }
    } else {
        match fetch_block(state, cid).await {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
    let content_type = match (format, codec) {
        (Format::Raw, _) => RAW,
        (_, Codec::DagCbor) => "application/vnd.ipld.dag-cbor",
        // A value named like a JSON document (Zarr's `zarr.json`) is one.
        (_, Codec::Raw | Codec::DagPb) if key.is_some_and(is_json_name) => "application/json",
        _ => "application/octet-stream",
    };
    let mut r = ranged(body, req);
    if r.status().is_success() {
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if format == Format::Raw
            && let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{cid}.bin\""))
        {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        r = with_etag(r, etag);
    }
    r
}

/// True for a key whose last part ends in `.json`, as Zarr's metadata documents do.
fn is_json_name(key: &str) -> bool {
    std::path::Path::new(key)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// A 200, 206 or 416 response for `body` as the `Range` header asks.
fn ranged(body: Bytes, req: Request<'_>) -> Response {
    let len = body.len() as u64;
    let (status, part, content_range) =
        match range::parse(header_str(req.headers, header::RANGE), len) {
            RangeWanted::Whole => (StatusCode::OK, body, None),
            RangeWanted::Part(r) => {
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
            RangeWanted::Unsatisfiable => {
                let mut r = problem(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return r;
            }
        };
    let part_len = part.len();
    let mut r = if req.head() {
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

/// Whether a CAR holds the whole DAG below `terminal` or its block alone, as `dag-scope`
/// and `entity-bytes` ask, or why that cannot be served.
fn whole_dag(opts: CarOptions, terminal: &Cid, block: &Bytes) -> Result<bool, Response> {
    match opts.scope {
        Scope::All => Ok(true),
        Scope::Block => Ok(false),
        Scope::Entity => match Codec::of(terminal) {
            // A file or a directory: its blocks are a UnixFS matter this gateway does not
            // read (yet); refusing beats sending more or less than asked.
            Ok(Codec::DagPb) => Err(problem(
                StatusCode::NOT_IMPLEMENTED,
                "dag-scope=entity and entity-bytes are not served for UnixFS (DAG-PB) data: \
                 ask dag-scope=all for the whole file or dag-scope=block for its root",
            )),
            // A raw block is an entity of bytes in one block: any range of it needs the
            // block, and a range wholly past its end is an error the spec asks for.
            Ok(Codec::Raw) => {
                let len = block.len() as u64;
                match opts.entity_bytes {
                    Some(range) if range.resolve(len).is_none() && range.outside(len) => {
                        Err(problem(
                            StatusCode::BAD_REQUEST,
                            format!("entity-bytes selects nothing of this {len}-byte entity"),
                        ))
                    }
                    _ => Ok(false),
                }
            }
            // Not UnixFS: the entity is the block, and entity-bytes does not apply.
            Ok(_) => Ok(false),
            Err(e) => Err(problem(StatusCode::BAD_REQUEST, e.to_string())),
        },
    }
}

/// A CAR response whose header names `root`: the `path` blocks, then `terminal`'s block
/// or DAG.
#[allow(clippy::too_many_arguments)]
fn car_response(
    state: &Arc<State>,
    req: Request<'_>,
    root: Cid,
    path: Vec<(Cid, Bytes)>,
    terminal: Cid,
    terminal_block: Bytes,
    opts: CarOptions,
    permit: &mut Option<OwnedSemaphorePermit>,
    etag: &str,
) -> Response {
    let all = match whole_dag(opts, &terminal, &terminal_block) {
        Ok(all) => all,
        Err(r) => return r,
    };
    let mut r = if req.head() {
        // A body of unknown length, so that no `Content-Length: 0` goes out: the GET's
        // length is not known either (RFC 9110 §8.6).
        Response::new(Body::from_stream(futures::stream::empty::<
            Result<Bytes, std::convert::Infallible>,
        >()))
    } else {
        let job = CarJob {
            root,
            path,
            terminal,
            terminal_block,
            all,
            dups: opts.dups,
        };
        Response::new(car::body(state.clone(), job, permit.take()))
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(opts.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{root}.car\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    with_etag(r, etag)
}

/// The headers every successful `/ipfs/` response carries.
fn with_common(mut r: Response, req: Request<'_>, wanted: &Wanted) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if let Ok(v) = HeaderValue::from_str(req.uri.path()) {
        h.insert("x-ipfs-path", v);
    }
    if let Some(query) = &wanted.location_query
        && let Ok(v) = HeaderValue::from_str(&format!("{}?{query}", req.uri.path()))
    {
        h.insert(header::CONTENT_LOCATION, v);
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
        "not found: this gateway serves GET /ipfs/{cid}[/{key}] and /metrics",
    )
}
