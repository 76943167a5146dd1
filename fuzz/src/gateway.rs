//! The gateway's `Range` and `Accept` parsing (and `?format=`, `If-None-Match`, the bearer
//! token and the path), through the public [`Gateway::router`]: one request with fuzzed
//! header values to a gateway over a few real blocks. The answer must be a sane status — no
//! server error — and a body that agrees with its headers: a 200 is the whole block, a 206 is
//! exactly the bytes its `Content-Range` names, a 416 names the block's length, and a CAR
//! reads back block by block.
//!
//! Input ([`frame`](crate::frame) parts): a selector (first byte: which block; second byte:
//! bit 0 for `HEAD`, bit 1 to take the path from the last part, bit 2 for a gateway that
//! wants a bearer token), then the values of `Range`, `Accept`, `If-None-Match` and
//! `Authorization` (an empty part sends no header), then `?format=` (or the whole path).

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use bytes::Bytes;
use futures::io::Cursor;
use hamt::car::CarReader;
use hamt::{BlockStore, Cid, Codec, Hamt, MemoryStore};
use hamt_gateway::{Gateway, GatewayBuilder};
use tower::ServiceExt as _;

/// The token of the gateway that asks for one.
pub const TOKEN: &str = "fuzz-secret";

struct Fixture {
    open: Gateway,
    guarded: Gateway,
    /// `(CID, block bytes)` of every block served: a raw block, an empty one, a HAMT root.
    blocks: Vec<(Cid, Bytes)>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| crate::block_on(make_fixture()))
}

async fn make_fixture() -> Fixture {
    let store: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
    let mut blocks = Vec::new();
    let raw: Bytes = (0..1000u32)
        .map(|i| u8::try_from(i * 7 % 251).unwrap_or(0))
        .collect();
    for data in [raw, Bytes::new()] {
        let cid = store.put(Codec::Raw, data.clone()).await.expect("memory");
        blocks.push((cid, data));
    }
    let mut map = Hamt::new(store.clone());
    for i in 0..40 {
        map.insert(&format!("key-{i}"), format!("value {i}").into_bytes())
            .await
            .expect("memory");
    }
    let root = map.flush().await.expect("memory");
    blocks.push((root, store.get(&root).await.expect("memory")));
    Fixture {
        open: Gateway::new(store.clone()),
        guarded: GatewayBuilder::new(store).bearer_token(TOKEN).build(),
        blocks,
    }
}

/// One input; see the module docs.
pub fn run(data: &[u8]) {
    let parts = crate::frame::split(data, 6);
    let part = |i: usize| parts.get(i).copied().unwrap_or_default();
    let selector = part(0);
    let pick = usize::from(selector.first().copied().unwrap_or(0));
    let flags = selector.get(1).copied().unwrap_or(0);
    let fx = fixture();
    let (cid, block) = &fx.blocks[pick % fx.blocks.len()];
    let uri = if flags & 2 != 0 {
        String::from_utf8_lossy(part(5)).into_owned()
    } else if part(5).is_empty() {
        format!("/ipfs/{cid}")
    } else {
        format!("/ipfs/{cid}?format={}", String::from_utf8_lossy(part(5)))
    };
    let method = if flags & 1 != 0 {
        Method::HEAD
    } else {
        Method::GET
    };
    let mut request = Request::builder().method(method.clone()).uri(uri.as_str());
    for (name, value) in [
        (header::RANGE, part(1)),
        (header::ACCEPT, part(2)),
        (header::IF_NONE_MATCH, part(3)),
        (header::AUTHORIZATION, part(4)),
    ] {
        if value.is_empty() {
            continue;
        }
        let Ok(value) = HeaderValue::from_bytes(value) else {
            return;
        };
        request = request.header(name, value);
    }
    let Ok(request) = request.body(Body::empty()) else {
        return;
    };
    let gateway = if flags & 4 != 0 {
        &fx.guarded
    } else {
        &fx.open
    };
    let router = gateway.router();
    crate::block_on(async move {
        let response = router
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        assert!(
            !status.is_server_error(),
            "{status} for {uri} with {parts:?}"
        );
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body in memory reads");
        if method == Method::HEAD || !uri.starts_with(&format!("/ipfs/{cid}")) {
            return;
        }
        check_body(status, &headers, &body, *cid, block).await;
    });
}

/// The body of a `GET` of `cid` (whose block is `block`) agrees with its status and headers.
async fn check_body(
    status: StatusCode,
    headers: &axum::http::HeaderMap,
    body: &Bytes,
    cid: Cid,
    block: &Bytes,
) {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let content_range = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok());
    if content_type.starts_with("application/vnd.ipld.car") {
        assert_eq!(status, StatusCode::OK);
        check_car(body, cid).await;
        return;
    }
    match status {
        StatusCode::OK => assert_eq!(body, block, "a 200 is not the whole block"),
        StatusCode::PARTIAL_CONTENT => {
            let range = content_range.expect("a 206 has a Content-Range");
            let (span, total) = range
                .strip_prefix("bytes ")
                .and_then(|r| r.split_once('/'))
                .expect("Content-Range is `bytes A-B/LEN`");
            let (a, b) = span
                .split_once('-')
                .expect("Content-Range is `bytes A-B/LEN`");
            let (a, b, total): (usize, usize, usize) = (
                a.parse().expect("a number"),
                b.parse().expect("a number"),
                total.parse().expect("a number"),
            );
            assert_eq!(total, block.len(), "Content-Range names another length");
            assert!(a <= b && b < total, "an empty or outside range: {range}");
            assert_eq!(&body[..], &block[a..=b], "a 206 is not the range it names");
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            assert_eq!(
                content_range,
                Some(format!("bytes */{}", block.len()).as_str())
            );
        }
        _ => {}
    }
}

/// A CAR body holds the root first, every block verified.
async fn check_car(body: &[u8], root: Cid) {
    let mut car = CarReader::new(Cursor::new(body))
        .await
        .expect("the gateway's CAR has a header");
    assert_eq!(car.roots(), &[root]);
    let first = car.next_block().await.expect("blocks verify");
    assert_eq!(
        first.map(|(c, _)| c),
        Some(root),
        "the CAR starts with its root"
    );
    while car.next_block().await.expect("blocks verify").is_some() {}
}
