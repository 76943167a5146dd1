//! The gateway's HTTP behaviour, in process, over a `MemoryStore`.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bytes::Bytes;
use futures::TryStreamExt as _;
use hamt::{BlockStore, Cid, Codec, Hamt, HamtReader, HashAlg, MemoryStore};
use hamt_gateway::{Gateway, GatewayBuilder};
use tower::ServiceExt as _;

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Bytes,
}

async fn send(gateway: &Gateway, req: Request<Body>) -> Reply {
    let resp = gateway.router().oneshot(req).await.unwrap();
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

async fn get(gateway: &Gateway, uri: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(gateway, req.body(Body::empty()).unwrap()).await
}

fn setup() -> (MemoryStore, Gateway) {
    let store = MemoryStore::new().with_read_verification(false);
    let gateway = Gateway::new(Arc::new(store.clone()));
    (store, gateway)
}

#[tokio::test]
async fn raw_blocks_plain_and_negotiated() {
    let (store, gw) = setup();
    let cid = store
        .put(Codec::Raw, Bytes::from_static(b"hello block"))
        .await
        .unwrap();
    let node = store
        .put(Codec::DagCbor, Bytes::from_static(&[0x82, 0x01, 0x02]))
        .await
        .unwrap();

    let r = get(&gw, &format!("/ipfs/{cid}"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"hello block");
    assert_eq!(
        r.headers[header::CACHE_CONTROL],
        "public, max-age=29030400, immutable"
    );
    assert_eq!(r.headers[header::ETAG], format!("\"{cid}\""));
    assert_eq!(r.headers[header::CONTENT_LENGTH], "11");

    for (uri, accept) in [
        (format!("/ipfs/{node}?format=raw"), ""),
        (format!("/ipfs/{node}"), "application/vnd.ipld.raw"),
        (
            format!("/ipfs/{node}"),
            "text/html, application/vnd.ipld.raw;q=0.9",
        ),
    ] {
        let headers: Vec<(&str, &str)> = if accept.is_empty() {
            vec![]
        } else {
            vec![("accept", accept)]
        };
        let r = get(&gw, &uri, &headers).await;
        assert_eq!(r.status, StatusCode::OK, "{uri} {accept}");
        assert_eq!(&r.body[..], &[0x82, 0x01, 0x02]);
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/vnd.ipld.raw");
        assert_eq!(r.headers[header::ETAG], format!("\"{node}.raw\""));
    }
    // A plain GET of a DAG-CBOR block (what py-hamt's KuboCAS sends for nodes).
    let r = get(&gw, &format!("/ipfs/{node}"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers[header::CONTENT_TYPE],
        "application/vnd.ipld.dag-cbor"
    );

    // HEAD: headers, no body.
    let r = send(
        &gw,
        Request::head(format!("/ipfs/{cid}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_LENGTH], "11");
    assert!(r.body.is_empty());

    // Conditional request.
    let r = get(
        &gw,
        &format!("/ipfs/{cid}"),
        &[("if-none-match", &format!("\"{cid}\""))],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn identity_cids_are_served_from_the_cid() {
    let (_store, gw) = setup();
    let cid = hamt::identity_cid(Codec::Raw, b"inline").unwrap();
    let r = get(&gw, &format!("/ipfs/{cid}"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"inline");
    let r = get(&gw, &format!("/ipfs/{cid}?format=raw"), &[]).await;
    assert_eq!(&r.body[..], b"inline");
}

#[tokio::test]
async fn ranges_as_py_hamt_sends_them() {
    let (store, gw) = setup();
    let cid = store
        .put(Codec::Raw, Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    let uri = format!("/ipfs/{cid}");
    for (range, status, body, content_range) in [
        (
            "bytes=2-4",
            StatusCode::PARTIAL_CONTENT,
            &b"234"[..],
            Some("bytes 2-4/10"),
        ),
        (
            "bytes=7-",
            StatusCode::PARTIAL_CONTENT,
            &b"789"[..],
            Some("bytes 7-9/10"),
        ),
        (
            "bytes=-2",
            StatusCode::PARTIAL_CONTENT,
            &b"89"[..],
            Some("bytes 8-9/10"),
        ),
        (
            "bytes=0-99",
            StatusCode::PARTIAL_CONTENT,
            &b"0123456789"[..],
            Some("bytes 0-9/10"),
        ),
        (
            "bytes=10-",
            StatusCode::RANGE_NOT_SATISFIABLE,
            &b"range not satisfiable"[..],
            Some("bytes */10"),
        ),
        ("bytes=0-1,3-4", StatusCode::OK, &b"0123456789"[..], None),
    ] {
        let r = get(&gw, &uri, &[("range", range)]).await;
        assert_eq!(r.status, status, "{range}");
        assert_eq!(&r.body[..], body, "{range}");
        assert_eq!(
            r.headers
                .get(header::CONTENT_RANGE)
                .map(|v| v.to_str().unwrap()),
            content_range,
            "{range}"
        );
    }
}

#[tokio::test]
async fn unixfs_files_are_served_as_their_bytes() {
    let (store, gw) = setup();
    let content: Vec<u8> = (0..10_000u32)
        .map(|i| u8::try_from(i % 253).unwrap())
        .collect();
    let file = hamt::test_suite::unixfs_file(&store, &content, 1024).await;
    let r = get(&gw, &format!("/ipfs/{file}"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], &content[..]);
    let r = get(
        &gw,
        &format!("/ipfs/{file}"),
        &[("range", "bytes=1000-2999")],
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], &content[1000..3000]);
    // format=raw is the root block itself, not the file.
    let r = get(&gw, &format!("/ipfs/{file}?format=raw"), &[]).await;
    assert_eq!(&r.body[..], &store.get(&file).await.unwrap()[..]);
    // A size limit refuses files it would have to buffer.
    let small = GatewayBuilder::new(Arc::new(store.clone()))
        .max_file_bytes(5000)
        .build();
    let r = get(&small, &format!("/ipfs/{file}"), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);
}

#[tokio::test]
async fn car_streams_the_whole_dag_and_imports_back() {
    let (store, gw) = setup();
    let mut map = Hamt::new(Arc::new(store.clone()));
    map.extend((0..500).map(|i| (format!("k{i}"), format!("v{i}").into_bytes())))
        .await
        .unwrap();
    let root = map.flush().await.unwrap();
    for req in [
        get(&gw, &format!("/ipfs/{root}?format=car"), &[]).await,
        get(
            &gw,
            &format!("/ipfs/{root}"),
            &[("accept", "application/vnd.ipld.car")],
        )
        .await,
    ] {
        assert_eq!(req.status, StatusCode::OK);
        assert!(
            req.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/vnd.ipld.car")
        );
        let mut car = hamt::car::CarReader::new(&req.body[..]).await.unwrap();
        assert_eq!(car.roots(), &[root]);
        let fresh = MemoryStore::new();
        while let Some((cid, data)) = car.next_block().await.unwrap() {
            fresh.put_keyed(&cid, data).await.unwrap();
        }
        let reader = HamtReader::open(Arc::new(fresh), root).await.unwrap();
        let values: Vec<(String, Bytes)> = reader.iter().try_collect().await.unwrap();
        assert_eq!(values.len(), 500);
    }
    let missing = HashAlg::Blake3.cid(Codec::DagCbor, b"absent");
    assert_eq!(
        get(&gw, &format!("/ipfs/{missing}?format=car"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn bad_requests_get_clean_4xx() {
    let (store, gw) = setup();
    let cid = store
        .put(Codec::Raw, Bytes::from_static(b"x"))
        .await
        .unwrap();
    let missing = HashAlg::Blake3.cid(Codec::Raw, b"never stored");
    let long = "b".repeat(10_000);
    for (uri, status) in [
        (format!("/ipfs/{missing}"), StatusCode::NOT_FOUND),
        ("/ipfs/not-a-cid".to_owned(), StatusCode::BAD_REQUEST),
        ("/ipfs/bafy".to_owned(), StatusCode::BAD_REQUEST),
        (format!("/ipfs/{long}"), StatusCode::BAD_REQUEST),
        (
            format!("/ipfs/{cid}?format=dag-json"),
            StatusCode::BAD_REQUEST,
        ),
        (format!("/ipfs/{cid}?format=tar"), StatusCode::BAD_REQUEST),
        (format!("/ipfs/{cid}/some/path"), StatusCode::BAD_REQUEST),
        ("/ipns/example.com".to_owned(), StatusCode::NOT_FOUND),
        ("/".to_owned(), StatusCode::NOT_FOUND),
        ("/ipfs/".to_owned(), StatusCode::NOT_FOUND),
    ] {
        let r = get(&gw, &uri, &[]).await;
        assert_eq!(r.status, status, "{}", &uri[..uri.len().min(80)]);
    }
    // A CID whose hash this gateway cannot check is refused, not served unverified.
    let unknown_hash = Cid::new_v1(0x55, multihash_of(0x13, b"sha512-sized digest placeholder"));
    assert_eq!(
        get(&gw, &format!("/ipfs/{unknown_hash}"), &[]).await.status,
        StatusCode::BAD_REQUEST
    );
    // No write routes.
    let r = send(
        &gw,
        Request::post(format!("/ipfs/{cid}"))
            .body(Body::from("x"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

fn multihash_of(code: u64, digest: &[u8]) -> multihash::Multihash<64> {
    multihash::Multihash::wrap(code, digest).unwrap()
}

#[tokio::test]
async fn corrupted_blocks_are_never_served() {
    let (store, gw) = setup();
    let cid = store
        .put(Codec::Raw, Bytes::from_static(b"good bytes"))
        .await
        .unwrap();
    store.insert_unchecked(cid, Bytes::from_static(b"evil bytes"));
    for uri in [
        format!("/ipfs/{cid}"),
        format!("/ipfs/{cid}?format=raw"),
        format!("/ipfs/{cid}?format=car"),
    ] {
        let r = get(&gw, &uri, &[]).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
        assert!(!r.body.windows(4).any(|w| w == b"evil"), "{uri}");
    }
    assert_eq!(gw.metrics().corrupt_blocks(), 3);
    let m = get(&gw, "/metrics", &[]).await;
    assert!(String::from_utf8_lossy(&m.body).contains("hamt_gateway_corrupt_blocks_total 3"));
}

#[tokio::test]
async fn bearer_token_guards_every_route() {
    let store = MemoryStore::new();
    let cid = store
        .put(Codec::Raw, Bytes::from_static(b"secret"))
        .await
        .unwrap();
    let gw = GatewayBuilder::new(Arc::new(store))
        .bearer_token("s3cret")
        .build();
    let uri = format!("/ipfs/{cid}");
    assert_eq!(get(&gw, &uri, &[]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&gw, &uri, &[("authorization", "Bearer wrong")])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&gw, "/metrics", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = get(&gw, &uri, &[("authorization", "Bearer s3cret")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"secret");
}

#[tokio::test]
async fn concurrency_limit_covers_car_streams() {
    let store = MemoryStore::new();
    let mut map = Hamt::new(Arc::new(store.clone()));
    // About 2 MB of values: more than the stream's buffer, so an unread CAR stays open.
    map.extend((0..2000).map(|i| (format!("k{i}"), vec![u8::try_from(i % 251).unwrap(); 1024])))
        .await
        .unwrap();
    let root = map.flush().await.unwrap();
    let small = store
        .put(Codec::Raw, Bytes::from_static(b"small"))
        .await
        .unwrap();
    let gw = GatewayBuilder::new(Arc::new(store)).concurrency(1).build();
    let car = Request::get(format!("/ipfs/{root}?format=car"))
        .body(Body::empty())
        .unwrap();
    let streaming = gw.router().oneshot(car).await.unwrap();
    assert_eq!(streaming.status(), StatusCode::OK);
    let blocked = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        get(&gw, &format!("/ipfs/{small}"), &[]),
    )
    .await;
    assert!(
        blocked.is_err(),
        "a second request must wait while the only permit streams a CAR"
    );
    drop(streaming);
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        get(&gw, &format!("/ipfs/{small}"), &[]),
    )
    .await
    .expect("the permit is released when the stream is dropped");
    assert_eq!(r.status, StatusCode::OK);
}
