//! Helpers shared by the gateway's tests: datasets, a store that counts what is fetched,
//! raw HTTP/1.1 over TCP (to see exactly what goes on the wire), and CAR reading.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hamt::{BlockStore, Cid, Hamt, MemoryStore};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A HAMT of `n` keys `k{i}` whose values are `value_len` bytes each, all different.
pub async fn hamt_of(store: &MemoryStore, n: usize, value_len: usize) -> Cid {
    let mut map = Hamt::new(Arc::new(store.clone()));
    map.extend((0..n).map(|i| (format!("k{i}"), value(i, value_len))))
        .await
        .unwrap();
    map.flush().await.unwrap()
}

/// The value of key `k{i}` in [`hamt_of`].
pub fn value(i: usize, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len)
        .map(|j| u8::try_from((i * 7 + j * 13) % 251).unwrap())
        .collect();
    let tag = i.to_le_bytes();
    let n = tag.len().min(len);
    v[..n].copy_from_slice(&tag[..n]);
    v
}

/// A store that counts the bytes handed out by `get`.
#[derive(Debug)]
pub struct Counting {
    pub inner: MemoryStore,
    pub bytes: AtomicU64,
}

impl Counting {
    pub fn new(inner: MemoryStore) -> Arc<Self> {
        Arc::new(Self {
            inner,
            bytes: AtomicU64::new(0),
        })
    }

    pub fn fetched(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl BlockStore for Counting {
    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> hamt::Result<()> {
        self.inner.put_keyed(cid, data).await
    }

    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        let data = self.inner.get(cid).await?;
        self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(data)
    }
}

/// `http://127.0.0.1:PORT` → `127.0.0.1:PORT`.
pub fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// Sends `request` as it is on a new connection.
pub async fn send_raw(url: &str, request: &str) -> TcpStream {
    let mut conn = TcpStream::connect(addr(url)).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    conn
}

/// A `GET` of `path` that closes the connection after the response.
pub fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
}

/// How a connection ended, as read by [`read_until_closed`].
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The peer closed (FIN).
    Closed,
    /// The peer reset the connection.
    Reset,
    /// Nothing happened for the whole wait.
    StillOpen,
}

/// Reads everything until the peer closes or `wait` passes.
pub async fn read_until_closed(conn: &mut TcpStream, wait: Duration) -> (Vec<u8>, End) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return (out, End::StillOpen),
            Ok(Ok(0)) => return (out, End::Closed),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => return (out, End::Reset),
        }
    }
}

/// An HTTP/1.1 response read off the wire: status, headers (lower-case names), and the
/// body as sent, with the chunked framing decoded; `complete` says whether the final
/// zero-length chunk (or the full `Content-Length`) arrived.
#[derive(Debug)]
pub struct Wire {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub complete: bool,
}

impl Wire {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses what [`read_until_closed`] read.
pub fn parse_wire(bytes: &[u8]) -> Wire {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = std::str::from_utf8(&bytes[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let rest = &bytes[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let (body, complete) = if chunked {
        dechunk(rest)
    } else {
        let len: Option<usize> = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse().unwrap());
        (rest.to_vec(), len.is_none_or(|l| l == rest.len()))
    };
    Wire {
        status,
        headers,
        body,
        complete,
    }
}

/// Decodes chunked framing; true when the last chunk (`0\r\n\r\n`) was there.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (body, false);
        };
        let size_text = std::str::from_utf8(&rest[..eol]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        rest = &rest[eol + 2..];
        if size == 0 {
            return (body, rest.starts_with(b"\r\n"));
        }
        if rest.len() < size + 2 {
            body.extend_from_slice(&rest[..rest.len().min(size)]);
            return (body, false);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// The blocks of a CAR, but for the one at `without`, in a store of their own: what a
/// trustless client holds.
pub async fn only(car: &[(Cid, Bytes)], without: Option<usize>) -> Arc<dyn BlockStore> {
    let out = MemoryStore::new();
    for (i, (cid, data)) in car.iter().enumerate() {
        if Some(i) != without {
            out.put_keyed(cid, data.clone()).await.unwrap();
        }
    }
    Arc::new(out)
}

/// The blocks of a CAR, in order, each verified against its CID; the header's roots.
pub async fn car_blocks(car: &[u8]) -> (Vec<Cid>, Vec<(Cid, Bytes)>) {
    let mut reader = hamt::car::CarReader::new(car).await.unwrap();
    let roots = reader.roots().to_vec();
    let mut blocks = Vec::new();
    while let Some(block) = reader.next_block().await.unwrap() {
        blocks.push(block);
    }
    (roots, blocks)
}

/// The blocks under `root` in depth-first pre-order, links in the order each block writes
/// them, every block once (`dups=n`) or each time it is met (`dups=y`).
pub async fn dfs(store: &dyn BlockStore, root: Cid, dups: bool) -> Vec<Cid> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root];
    while let Some(cid) = stack.pop() {
        if hamt::inline_data(&cid).is_some() || (!dups && !seen.insert(cid)) {
            continue;
        }
        let data = store.get(&cid).await.unwrap();
        out.push(cid);
        let mut links = encoded_links(&cid, &data);
        links.reverse();
        stack.extend(links);
    }
    out
}

/// The links of a block in encoded order: every tag-42 item as the bytes go, found with
/// `Reader::cid` (a second reading, independent of the gateway's walk).
fn encoded_links(cid: &Cid, data: &[u8]) -> Vec<Cid> {
    match cid.codec() {
        0x71 => {
            let mut out = Vec::new();
            let mut r = hamt::codec::cbor::Reader::new(data);
            collect(&mut r, &mut out);
            out
        }
        _ => hamt::dag::links(cid, data).unwrap(),
    }
}

fn collect(r: &mut hamt::codec::cbor::Reader<'_>, out: &mut Vec<Cid>) {
    use hamt::codec::cbor;
    let save = r.clone();
    if let Ok((bytes, _)) = r.cid() {
        out.push(Cid::try_from(bytes).unwrap());
        return;
    }
    *r = save;
    let head = r.head().unwrap();
    match head.major {
        cbor::BYTES | cbor::TEXT => {
            r.take(usize::try_from(head.arg).unwrap()).unwrap();
        }
        cbor::ARRAY => (0..head.arg).for_each(|_| collect(r, out)),
        cbor::MAP => (0..head.arg * 2).for_each(|_| collect(r, out)),
        cbor::TAG => collect(r, out),
        _ => {}
    }
}

/// A response read in process, through the router.
#[derive(Debug)]
pub struct Reply {
    pub status: axum::http::StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// `method uri` with `headers`, through `gateway`'s router.
pub async fn call(
    gateway: &hamt_gateway::Gateway,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> Reply {
    use tower::ServiceExt as _;
    let mut req = axum::http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = gateway
        .router()
        .oneshot(req.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

/// An HTTP/1.1 client on one kept-alive connection, for responses with a `Content-Length`.
pub struct KeepAlive {
    conn: tokio::io::BufReader<TcpStream>,
}

impl KeepAlive {
    pub async fn connect(url: &str) -> Self {
        let conn = TcpStream::connect(addr(url)).await.unwrap();
        conn.set_nodelay(true).unwrap();
        Self {
            conn: tokio::io::BufReader::new(conn),
        }
    }

    /// `GET path`: the status and the body, or `None` when the connection failed.
    pub async fn get(&mut self, path: &str) -> Option<(u16, Vec<u8>)> {
        use tokio::io::AsyncBufReadExt as _;
        let request = format!("GET {path} HTTP/1.1\r\nHost: gateway\r\n\r\n");
        self.conn
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .ok()?;
        let mut line = String::new();
        self.conn.read_line(&mut line).await.ok()?;
        let status = line.split(' ').nth(1)?.parse().ok()?;
        let mut len = 0;
        loop {
            line.clear();
            if self.conn.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().ok()?;
            }
        }
        let mut body = vec![0; len];
        self.conn.read_exact(&mut body).await.ok()?;
        Some((status, body))
    }
}

/// This process's resident memory, in bytes (Linux: `/proc/self/status`).
pub fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// A store that hands out a fresh copy of each block, as a store reading from disk or the
/// network does (a `MemoryStore` shares one buffer, which would hide what a reader holds).
#[derive(Debug)]
pub struct Copying(pub MemoryStore);

#[async_trait::async_trait]
impl BlockStore for Copying {
    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> hamt::Result<()> {
        self.0.put_keyed(cid, data).await
    }

    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        Ok(Bytes::copy_from_slice(&self.0.get(cid).await?))
    }
}
