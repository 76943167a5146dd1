//! [`GatewayStore`]: a read-only store over trustless HTTP gateways
//! (`ipfs+http://HOST:PORT`, `ipfs+https://HOST`), needing no IPFS node and no RPC API.
//!
//! Blocks come one per request (`GET /ipfs/{cid}?format=raw`), each checked against its CID;
//! whole subtrees come as one CAR (`?format=car&dag-scope=all`), each block checked as it
//! arrives and the stream checked against the depth-first walk it claims to be
//! ([`dfs`]). Many gateways are tried in order of health ([`pool`]).

mod dfs;
mod pool;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use hamt::car::CarReader;
use hamt::{BlockStore, BlockStream, Capabilities, Cid, Codec, SubtreeFetch, verify};
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER,
};
use tokio::sync::SemaphorePermit;
use url::Url;

use self::dfs::DfsCheck;
use self::pool::{Gateway, order};
use crate::error::Error;

/// The URL scheme of this store: `ipfs+http://HOST:PORT` (see also [`GATEWAY_SCHEME_HTTPS`]).
pub const GATEWAY_SCHEME: &str = "ipfs+http";

/// The URL scheme of this store over TLS: `ipfs+https://HOST`.
pub const GATEWAY_SCHEME_HTTPS: &str = "ipfs+https";

/// The name errors give this store.
const STORE: &str = "ipfs gateway";

/// The largest block accepted from a gateway (the IPFS block limit is 2 MiB).
const MAX_BLOCK: usize = 4 << 20;

/// The longest `Retry-After` honoured: a gateway asking for more is set back this long.
const MAX_RETRY_AFTER: Duration = Duration::from_mins(10);

/// The media type of a raw block.
const RAW: &str = "application/vnd.ipld.raw";

/// Settings of a [`GatewayStore`].
#[derive(Debug, Clone)]
pub struct GatewayStoreBuilder {
    gateways: Vec<Url>,
    concurrency: usize,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    penalty: Duration,
    cars: bool,
    /// Credentials for the gateways on one host, and the headers every gateway is sent.
    authorization: Option<(String, HeaderValue)>,
    headers: HeaderMap,
}

impl GatewayStoreBuilder {
    /// A store reading from `gateway` (more with [`gateway`](Self::gateway)): 32 requests
    /// in flight per gateway, 30 s without progress ends a request, two retries of temporary
    /// failures, a gateway that fails three times in a row, or lies, is set back for 30 s,
    /// and subtrees are asked for as CARs.
    pub fn new(gateway: Url) -> Self {
        Self {
            gateways: vec![gateway],
            concurrency: 32,
            timeout: Duration::from_secs(30),
            retries: 2,
            backoff: Duration::from_millis(200),
            penalty: Duration::from_secs(30),
            cars: true,
            authorization: None,
            headers: HeaderMap::new(),
        }
    }

    /// Sends `Authorization: value` to the gateways on `host`, and to no other: a node's
    /// credentials reach its own gateway, never a public one (as [`KuboStore`] uses it).
    ///
    /// [`KuboStore`]: crate::KuboStore
    #[must_use]
    pub fn authorization(mut self, host: &str, mut value: HeaderValue) -> Self {
        value.set_sensitive(true);
        self.authorization = Some((host.to_owned(), value));
        self
    }

    /// Headers sent with every request, to every gateway.
    #[must_use]
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// Another gateway, tried after those before it while they are healthy.
    #[must_use]
    pub fn gateway(mut self, url: Url) -> Self {
        self.gateways.push(url);
        self
    }

    /// Most requests in flight to each gateway.
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How long a request may wait for a connection, or for the next bytes of an answer.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries of a read that failed on every gateway for a temporary reason, the first
    /// after `backoff`, doubling.
    #[must_use]
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// How long a gateway is set back after three failures in a row or a lie.
    #[must_use]
    pub fn penalty(mut self, penalty: Duration) -> Self {
        self.penalty = penalty;
        self
    }

    /// Whether subtrees and key paths are asked for as CARs (the default); without, every
    /// block is one request, as py-hamt reads, and the store offers no
    /// [`SubtreeFetch`].
    #[must_use]
    pub fn cars(mut self, cars: bool) -> Self {
        self.cars = cars;
        self
    }

    /// The store.
    ///
    /// # Errors
    /// [`Error::Http`] when the HTTP client cannot be set up.
    pub fn build(self) -> Result<GatewayStore, Error> {
        let client = reqwest::Client::builder()
            .default_headers(self.headers.clone())
            .connect_timeout(self.timeout)
            .read_timeout(self.timeout)
            .pool_max_idle_per_host(self.concurrency)
            .build()
            .map_err(|source| Error::Http {
                endpoint: "client".into(),
                source,
            })?;
        let gateways = self
            .gateways
            .iter()
            .map(|u| {
                let mut gateway = Gateway::new(u.clone(), self.concurrency);
                if let Some((host, value)) = &self.authorization
                    && gateway.url.host_str() == Some(host.as_str())
                {
                    gateway.authorization = Some(value.clone());
                }
                gateway
            })
            .collect();
        Ok(GatewayStore {
            inner: Arc::new(Inner {
                client,
                gateways,
                builder: self,
            }),
        })
    }
}

/// A read-only block store over trustless gateways: every block checked against its CID,
/// whole subtrees fetched as one CAR when a gateway serves them. Cloning is cheap; clones
/// share the gateways' standing.
#[derive(Debug, Clone)]
pub struct GatewayStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    gateways: Vec<Gateway>,
    builder: GatewayStoreBuilder,
}

/// Why one gateway did not give a block.
enum Miss {
    /// It does not have it.
    NotFound,
    /// It failed; `temporary` when asking again may succeed.
    Failed(hamt::Error, bool),
}

impl GatewayStore {
    /// The settings a URL names: `ipfs+http://HOST:PORT[/PATH]` or `ipfs+https://HOST`, the
    /// first gateway (`http(s)://HOST…`), with query options `gateway=URL` (repeatable: more
    /// gateways, in order), `concurrency=N` (per gateway), `timeout=SECONDS`, `car=false`
    /// (every block one request: no CARs, see [`cars`](GatewayStoreBuilder::cars)).
    /// Credentials in a gateway's URL are sent to that gateway only.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`].
    pub fn builder_from_url(url: &str) -> Result<GatewayStoreBuilder, Error> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: redact(url),
            reason,
        };
        let parsed = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        let base = match parsed.scheme() {
            GATEWAY_SCHEME => "http",
            GATEWAY_SCHEME_HTTPS => "https",
            other => {
                return Err(invalid(format!(
                    "scheme {other}: expected {GATEWAY_SCHEME} or {GATEWAY_SCHEME_HTTPS}"
                )));
            }
        };
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host".into()));
        }
        let mut first = parsed.clone();
        first.set_query(None);
        first.set_fragment(None);
        // `Url::set_scheme` refuses to turn a non-special scheme into a special one.
        let first = Url::parse(&format!(
            "{base}{}",
            &first.as_str()[parsed.scheme().len()..]
        ))
        .map_err(|e| invalid(e.to_string()))?;
        let mut builder = GatewayStoreBuilder::new(first);
        for (key, value) in parsed.query_pairs() {
            match &*key {
                "gateway" => {
                    let g = Url::parse(&value).map_err(|e| invalid(format!("gateway: {e}")))?;
                    if !matches!(g.scheme(), "http" | "https") {
                        return Err(invalid(format!("gateway {}: not http(s)", redact(&value))));
                    }
                    builder = builder.gateway(g);
                }
                "concurrency" => {
                    let n = value
                        .parse::<usize>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| invalid(format!("concurrency={value}")))?;
                    builder = builder.concurrency(n);
                }
                "timeout" => {
                    let secs = value
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s > 0.0 && *s < 86_400.0)
                        .ok_or_else(|| invalid(format!("timeout={value}")))?;
                    builder = builder.timeout(Duration::from_secs_f64(secs));
                }
                "car" => {
                    let cars = value
                        .parse::<bool>()
                        .map_err(|_| invalid(format!("car={value}: true or false")))?;
                    builder = builder.cars(cars);
                }
                other => return Err(invalid(format!("unknown option {other}"))),
            }
        }
        Ok(builder)
    }

    /// The store a URL names, as [`builder_from_url`](Self::builder_from_url) reads it.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`]; [`Error::Http`].
    pub fn from_url(url: &str) -> Result<Self, Error> {
        Self::builder_from_url(url)?.build()
    }

    /// The gateways' base URLs (without credentials), in the order given.
    pub fn gateways(&self) -> Vec<Url> {
        self.inner.gateways.iter().map(|g| g.url.clone()).collect()
    }

    /// Whether the gateway at `index` (in the order given) is set back now.
    pub fn is_set_back(&self, index: usize) -> bool {
        self.inner
            .gateways
            .get(index)
            .is_some_and(Gateway::is_set_back)
    }

    fn opts(&self) -> &GatewayStoreBuilder {
        &self.inner.builder
    }

    /// A GET of `/ipfs/{path…}` on `gateway`, with its credentials.
    fn request(
        &self,
        gateway: &Gateway,
        path: &[&str],
        query: &[(&str, &str)],
        accept: &str,
    ) -> hamt::Result<reqwest::RequestBuilder> {
        let mut url = gateway.url.clone();
        let no_path = || hamt::Error::InvalidConfig(format!("gateway {} has no path", gateway.url));
        url.path_segments_mut()
            .map_err(|()| no_path())?
            .pop_if_empty()
            .push("ipfs")
            .extend(path);
        url.query_pairs_mut().extend_pairs(query);
        let mut request = self.inner.client.get(url).header(ACCEPT, accept);
        if let Some(value) = &gateway.authorization {
            request = request.header(AUTHORIZATION, value.clone());
        } else if let Some((user, password)) = &gateway.auth {
            request = request.basic_auth(user, password.as_ref());
        }
        Ok(request)
    }

    /// One block from one gateway, checked.
    async fn block_from(&self, gateway: &Gateway, cid: &Cid) -> Result<Bytes, Miss> {
        let endpoint = format!("gateway {}", gateway.url);
        let penalty = self.opts().penalty;
        let cid_text = cid.to_string();
        let request = self
            .request(gateway, &[&cid_text], &[("format", "raw")], RAW)
            .map_err(|e| Miss::Failed(e, false))?
            .timeout(self.opts().timeout);
        let _permit = acquire(gateway).await?;
        let started = std::time::Instant::now();
        let failed = |e: Error| {
            gateway.failed(penalty);
            let temporary = e.is_temporary();
            Miss::Failed(to_hamt(e), temporary)
        };
        let response = request.send().await.map_err(|source| {
            failed(Error::Http {
                endpoint: endpoint.clone(),
                source,
            })
        })?;
        let status = response.status();
        if let Some(miss) = self.refused(gateway, &endpoint, status, response.headers()) {
            return Err(miss);
        }
        if status != StatusCode::OK || response.headers().contains_key(CONTENT_RANGE) {
            // A part of a block, asked for whole: a gateway that does not follow the spec.
            gateway.set_back(penalty);
            return Err(Miss::Failed(
                to_hamt(Error::BadResponse {
                    endpoint,
                    reason: format!("HTTP {status} with a partial body to a whole-block request"),
                }),
                false,
            ));
        }
        let body = read_limited(response, MAX_BLOCK)
            .await
            .map_err(|e| match e {
                Ok(source) => failed(Error::Http {
                    endpoint: endpoint.clone(),
                    source,
                }),
                Err(reason) => {
                    gateway.set_back(penalty);
                    Miss::Failed(
                        to_hamt(Error::BadResponse {
                            endpoint: endpoint.clone(),
                            reason,
                        }),
                        false,
                    )
                }
            })?;
        if let Err(e) = verify(cid, &body) {
            tracing::error!(%cid, gateway = %gateway.url, "gateway returned bytes that do not match the CID; setting it back");
            gateway.set_back(penalty);
            return Err(Miss::Failed(e, false));
        }
        gateway.succeeded();
        gateway.answered_in(started.elapsed());
        Ok(body)
    }

    /// The miss an error status means, or `None` for a success; records the gateway's
    /// standing (`Retry-After` honoured).
    fn refused(
        &self,
        gateway: &Gateway,
        endpoint: &str,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<Miss> {
        if status.is_success() {
            return None;
        }
        if matches!(status.as_u16(), 404 | 410) {
            // An answer, neither a failure nor proof of health: a gateway set back for a
            // lie is not forgiven for saying it lacks a block.
            return Some(Miss::NotFound);
        }
        let e = Error::Status {
            endpoint: endpoint.to_owned(),
            status: status.as_u16(),
            message: status.canonical_reason().unwrap_or("").to_owned(),
        };
        let temporary = e.is_temporary();
        match retry_after(headers) {
            Some(wait) if matches!(status.as_u16(), 429 | 503) => gateway.set_back(wait),
            _ if temporary => gateway.failed(self.opts().penalty),
            _ => {}
        }
        Some(Miss::Failed(to_hamt(e), temporary))
    }

    /// Opens a CAR of `path` on the first healthy gateway that serves CARs; `Ok(None)` when
    /// none does.
    async fn open_car(
        &self,
        root: Cid,
        path: &[&str],
        dups: bool,
        scope: &str,
    ) -> hamt::Result<Option<OpenCar<'_>>> {
        let accept = if dups {
            "application/vnd.ipld.car; version=1; order=dfs; dups=y"
        } else {
            "application/vnd.ipld.car; version=1; order=dfs; dups=n"
        };
        let query = [
            ("format", "car"),
            ("dag-scope", scope),
            ("car-order", "dfs"),
            ("car-dups", if dups { "y" } else { "n" }),
        ];
        let penalty = self.opts().penalty;
        let mut last = None;
        for gateway in order(&self.inner.gateways) {
            if !gateway.serves_car() {
                continue;
            }
            let endpoint = format!("gateway {}", gateway.url);
            let request = self.request(gateway, path, &query, accept)?;
            let permit = match acquire(gateway).await {
                Ok(p) => p,
                Err(Miss::Failed(e, _)) => return Err(e),
                Err(Miss::NotFound) => continue,
            };
            let response = match request.send().await {
                Ok(r) => r,
                Err(source) => {
                    gateway.failed(penalty);
                    last = Some(to_hamt(Error::Http { endpoint, source }));
                    continue;
                }
            };
            let status = response.status();
            let is_car = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("application/vnd.ipld.car"));
            match self.refused(gateway, &endpoint, status, response.headers()) {
                None if status == StatusCode::OK && is_car => {}
                Some(Miss::NotFound) => {
                    last.get_or_insert(hamt::Error::NotFound { cid: root });
                    continue;
                }
                Some(Miss::Failed(e, true)) => {
                    last = Some(e);
                    continue;
                }
                // A key's path may be refused for the key (400: a path into a value); that
                // says nothing of the gateway's CARs.
                Some(Miss::Failed(e, false)) if path.len() > 1 => {
                    last = Some(e);
                    continue;
                }
                // 200 with something else, 400, 406, 501…: it cannot serve this CAR.
                _ => {
                    tracing::info!(gateway = %gateway.url, %status, "gateway does not serve CARs; reading blocks from it");
                    gateway.no_car();
                    continue;
                }
            }
            let body = response
                .bytes_stream()
                .map_err(std::io::Error::other)
                .boxed()
                .into_async_read();
            let body: Box<dyn futures::io::AsyncRead + Send + Unpin> = Box::new(body);
            match CarReader::new(body).await {
                Ok(reader) => {
                    return Ok(Some(OpenCar {
                        reader,
                        gateway,
                        _permit: permit,
                    }));
                }
                Err(e) => {
                    tracing::warn!(gateway = %gateway.url, error = %e, "gateway sent a CAR with a bad header");
                    gateway.set_back(penalty);
                    last = Some(e);
                }
            }
        }
        match last {
            Some(hamt::Error::NotFound { cid }) => Err(hamt::Error::NotFound { cid }),
            // Failures before any block: the caller reads block by block instead.
            _ => Ok(None),
        }
    }

    /// The blocks of a CAR of `path`, as they arrive; `check` follows the walk they must be.
    fn car_stream<'a>(
        &'a self,
        root: Cid,
        path: Vec<String>,
        dups: bool,
        scope: &'static str,
        check: Option<DfsCheck>,
    ) -> BlockStream<'a> {
        enum State<'a> {
            Start(Vec<String>, Option<DfsCheck>),
            Reading(OpenCar<'a>, Option<DfsCheck>),
        }
        let penalty = self.opts().penalty;
        futures::stream::try_unfold(State::Start(path, check), move |state| async move {
            let (mut car, mut check) = match state {
                State::Reading(car, check) => (car, check),
                State::Start(path, check) => {
                    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
                    match self.open_car(root, &segments, dups, scope).await? {
                        Some(car) => (car, check),
                        None => {
                            return Err(hamt::Error::NotSupported {
                                store: STORE,
                                operation: "CAR fetches (no gateway serves them now)",
                            });
                        }
                    }
                }
            };
            match car.reader.next_block().await {
                Ok(Some((cid, data))) => {
                    if let Some(check) = &mut check
                        && let Err(reason) = check.accept(&cid, &data)
                    {
                        car.gateway.set_back(penalty);
                        return Err(hamt::Error::Decode {
                            what: "gateway CAR",
                            cid: Some(cid),
                            reason,
                        });
                    }
                    let block = hamt::Block::verified(cid, data)?;
                    Ok(Some((block, State::Reading(car, check))))
                }
                Ok(None) => {
                    if let Some(check) = &mut check
                        && let Err(reason) = check.finish()
                    {
                        car.gateway.set_back(penalty);
                        return Err(hamt::Error::Decode {
                            what: "gateway CAR",
                            cid: Some(root),
                            reason,
                        });
                    }
                    car.gateway.succeeded();
                    Ok(None)
                }
                Err(e) => {
                    if matches!(e, hamt::Error::Corrupt { .. } | hamt::Error::Decode { .. }) {
                        car.gateway.set_back(penalty);
                    } else {
                        car.gateway.failed(penalty);
                    }
                    Err(e)
                }
            }
        })
        .boxed()
    }
}

impl GatewayStore {
    /// One round of asking the gateways for `cid`, in order, the next asked as soon as the
    /// one before fails or is slower than its p90 (a hedged request): the block, or the
    /// failure to report (a lie first) and whether any failure was temporary.
    async fn hedged_round(&self, cid: &Cid) -> (Option<Bytes>, Option<hamt::Error>, bool) {
        let gateways = order(&self.inner.gateways);
        let mut pending = futures::stream::FuturesUnordered::new();
        let (mut last, mut temporary) = (None, false);
        let mut next = 0;
        loop {
            if pending.is_empty() {
                let Some(gateway) = gateways.get(next) else {
                    return (None, last, temporary);
                };
                pending.push(self.block_from(gateway, cid));
                next += 1;
            }
            // The newest request's gateway decides how long to wait before the next.
            let hedge = gateways.get(next).map(|_| gateways[next - 1].hedge_after());
            let answer = match hedge {
                Some(wait) => tokio::select! {
                    answer = pending.next() => answer,
                    () = tokio::time::sleep(wait) => {
                        pending.push(self.block_from(gateways[next], cid));
                        next += 1;
                        continue;
                    }
                },
                None => pending.next().await,
            };
            match answer {
                Some(Ok(data)) => return (Some(data), None, false),
                Some(Err(Miss::NotFound)) | None => {}
                Some(Err(Miss::Failed(e, t))) => {
                    temporary |= t;
                    // A lie is what the caller must hear about, over a later failure.
                    if !matches!(last, Some(hamt::Error::Corrupt { .. })) {
                        last = Some(e);
                    }
                }
            }
            // A gateway that said no: the next is asked at once.
            if let Some(gateway) = gateways.get(next) {
                pending.push(self.block_from(gateway, cid));
                next += 1;
            }
        }
    }
}

/// A CAR being read from one gateway, holding one of its request permits.
struct OpenCar<'a> {
    reader: CarReader<Box<dyn futures::io::AsyncRead + Send + Unpin>>,
    gateway: &'a Gateway,
    _permit: SemaphorePermit<'a>,
}

/// One of `gateway`'s request permits.
async fn acquire(gateway: &Gateway) -> Result<SemaphorePermit<'_>, Miss> {
    gateway.permits.acquire().await.map_err(|_| {
        Miss::Failed(
            hamt::Error::NotSupported {
                store: STORE,
                operation: "requests after the store closed",
            },
            false,
        )
    })
}

/// The body, at most `limit` bytes: `Err(Ok(_))` when reading failed, `Err(Err(_))` when
/// it is too long.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, Result<reqwest::Error, String>> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(Err(format!("a block over {limit} bytes")));
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(Ok)? {
        if body.len() + chunk.len() > limit {
            return Err(Err(format!("a block over {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// How long `Retry-After` asks to wait (seconds or an HTTP date), at most
/// [`MAX_RETRY_AFTER`].
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A Kubo-store error as the error of this store.
fn to_hamt(e: Error) -> hamt::Error {
    match &e {
        Error::Http { source, .. } if source.is_timeout() => hamt::Error::Timeout { store: STORE },
        Error::Status {
            status: 401 | 403,
            message,
            ..
        } => hamt::Error::Unauthorized {
            store: STORE,
            reason: message.clone(),
        },
        _ => hamt::Error::Backend {
            store: STORE,
            temporary: e.is_temporary(),
            source: Box::new(e),
        },
    }
}

/// The URL with any password replaced, for errors and logs.
fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[async_trait]
impl BlockStore for GatewayStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            shared: true,
            subtree: self.opts().cars,
            ..Capabilities::default()
        }
    }

    fn subtree_fetch(&self) -> Option<&dyn SubtreeFetch> {
        if self.opts().cars { Some(self) } else { None }
    }

    fn concurrency(&self) -> usize {
        self.opts()
            .concurrency
            .saturating_mul(self.inner.gateways.len())
    }

    async fn put_keyed(&self, _cid: &Cid, _data: Bytes) -> hamt::Result<()> {
        Err(hamt::Error::NotSupported {
            store: STORE,
            operation: "writes (a gateway store is read-only)",
        })
    }

    async fn put(&self, _codec: Codec, _data: Bytes) -> hamt::Result<Cid> {
        Err(hamt::Error::NotSupported {
            store: STORE,
            operation: "writes (a gateway store is read-only)",
        })
    }

    /// The block from the healthiest gateway that has it and answers truly; each gateway
    /// once per round, rounds repeated (with backoff) while failures are temporary. A
    /// gateway slower than its recent p90 is raced on the next one: the first verified
    /// answer wins.
    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        if let Some(data) = hamt::inline_data(cid) {
            return Ok(Bytes::copy_from_slice(data));
        }
        let mut delay = self.opts().backoff;
        let mut round = 0;
        loop {
            let (found, last, temporary) = self.hedged_round(cid).await;
            if let Some(data) = found {
                return Ok(data);
            }
            match last {
                None => return Err(hamt::Error::NotFound { cid: *cid }),
                Some(e) if !temporary || round >= self.opts().retries => return Err(e),
                Some(e) => {
                    tracing::warn!(%cid, round, error = %e, "every gateway failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    round += 1;
                }
            }
        }
    }
}

impl SubtreeFetch for GatewayStore {
    /// `GET /ipfs/{root}?format=car&dag-scope=all` with `order=dfs` and `dups` as asked; the
    /// stream is checked against the walk it must be. A store whose gateways serve no CARs
    /// fails at once with [`hamt::Error::NotSupported`].
    fn subtree(&self, root: Cid, dups: bool) -> BlockStream<'_> {
        self.car_stream(
            root,
            vec![root.to_string()],
            dups,
            "all",
            Some(DfsCheck::new(root, dups)),
        )
    }

    /// `GET /ipfs/{root}/{key…}?format=car`: the blocks from the root to the value, as a
    /// gateway that resolves paths through a HAMT (`hamt serve`) sends them. `None` for a
    /// key a URL path cannot name (an empty, `.` or `..` segment) or when no gateway serves
    /// CARs.
    fn path(&self, root: Cid, key: &str) -> Option<BlockStream<'_>> {
        if key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
            || !self.inner.gateways.iter().any(Gateway::serves_car)
        {
            return None;
        }
        let mut path = vec![root.to_string()];
        path.extend(key.split('/').map(str::to_owned));
        Some(self.car_stream(root, path, false, "block", None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_gateways_and_options() {
        let b = GatewayStore::builder_from_url(
            "ipfs+http://u:pw@127.0.0.1:8080/base?gateway=https%3A%2F%2Fdweb.link&concurrency=4&timeout=2.5",
        )
        .unwrap();
        assert_eq!(b.gateways.len(), 2);
        assert_eq!(b.gateways[0].as_str(), "http://u:pw@127.0.0.1:8080/base");
        assert_eq!(b.gateways[1].as_str(), "https://dweb.link/");
        assert_eq!(b.concurrency, 4);
        assert_eq!(b.timeout, Duration::from_millis(2500));
        assert!(b.cars);
        let b = GatewayStore::builder_from_url("ipfs+http://h:1?car=false").unwrap();
        assert!(!b.cars);
        let store = b.build().unwrap();
        assert!(store.subtree_fetch().is_none() && !store.capabilities().subtree);
        assert!(
            GatewayStore::from_url("ipfs+http://h:1")
                .unwrap()
                .subtree_fetch()
                .is_some()
        );
        let b = GatewayStore::builder_from_url("ipfs+https://ipfs.io").unwrap();
        assert_eq!(b.gateways[0].as_str(), "https://ipfs.io/");
        for bad in [
            "ipfs+ftp://h",
            "ipfs+http://h?gateway=ftp://x",
            "ipfs+http://h?concurrency=0",
            "ipfs+http://h?timeout=-1",
            "ipfs+http://h?what=1",
            "ipfs+http://h?car=no",
            "ipfs+http://",
            "kubo+http://h",
        ] {
            assert!(
                matches!(
                    GatewayStore::builder_from_url(bad),
                    Err(Error::InvalidUrl { .. })
                ),
                "{bad}"
            );
        }
        // Passwords never reach an error message.
        let e = GatewayStore::builder_from_url("ipfs+http://u:secret@h?bad=1").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "99999".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_mins(2));
        h.insert(RETRY_AFTER, later.parse().unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_mins(2));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
