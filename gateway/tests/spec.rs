//! Conformance with the trustless-gateway and path-gateway specs (ipfs/specs
//! `src/http-gateways/trustless-gateway.md`, `path-gateway.md`), one test per behaviour,
//! and paths through a HAMT. In process, over a `MemoryStore`.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use axum::http::StatusCode;
use bytes::Bytes;
use common::{Reply, call, car_blocks, dfs, hamt_of, only};
use hamt::{BlockStore, Cid, Codec, Hamt, HamtReader, HashAlg, MemoryStore};
use hamt_gateway::Gateway;

const CAR: &str = "application/vnd.ipld.car";
const RAW: &str = "application/vnd.ipld.raw";

fn gateway(store: &MemoryStore) -> Gateway {
    Gateway::new(Arc::new(store.clone()))
}

async fn get(gw: &Gateway, uri: &str) -> Reply {
    call(gw, "GET", uri, &[]).await
}

async fn cids_of(reply: &Reply) -> Vec<Cid> {
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    car_blocks(&reply.body)
        .await
        .1
        .into_iter()
        .map(|(c, _)| c)
        .collect()
}

#[tokio::test]
async fn service_worker_registration_is_refused() {
    let store = MemoryStore::new();
    let cid = store.put(Codec::Raw, "script".into()).await.unwrap();
    let gw = gateway(&store);
    for uri in [format!("/ipfs/{cid}"), format!("/ipfs/{cid}/")] {
        let r = call(&gw, "GET", &uri, &[("service-worker", "script")]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
    }
    assert_eq!(
        get(&gw, &format!("/ipfs/{cid}")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn dag_scope_selects_the_blocks_and_names_itself_in_the_etag() {
    let store = MemoryStore::new();
    let root = hamt_of(&store, 600, 100).await;
    let gw = gateway(&store);
    let car = |q: &str| format!("/ipfs/{root}?format=car{q}");

    let all = get(&gw, &car("")).await;
    assert_eq!(cids_of(&all).await, dfs(&store, root, false).await);
    assert_eq!(cids_of(&all).await.len(), store.len());
    let explicit_all = get(&gw, &car("&dag-scope=all")).await;
    assert_eq!(explicit_all.body, all.body);

    // A HAMT root is DAG-CBOR, not UnixFS: its entity is its block, and entity-bytes does
    // not apply.
    let block = get(&gw, &car("&dag-scope=block")).await;
    let entity = get(&gw, &car("&dag-scope=entity")).await;
    let ranged = get(&gw, &car("&entity-bytes=0:10")).await;
    for r in [&block, &entity, &ranged] {
        assert_eq!(cids_of(r).await, vec![root]);
    }
    let etags: HashSet<&str> = [&all, &block, &entity, &ranged]
        .iter()
        .map(|r| r.header("etag").unwrap())
        .collect();
    assert_eq!(
        etags.len(),
        4,
        "each scope and range has its own ETag: {etags:?}"
    );
    assert_eq!(explicit_all.header("etag"), all.header("etag"));

    assert_eq!(
        get(&gw, &car("&dag-scope=deep")).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&gw, &car("&dag-scope=block&entity-bytes=0:1"))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&gw, &car("&entity-bytes=x")).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn entity_bytes_of_a_raw_block_and_scopes_of_unixfs() {
    let store = MemoryStore::new();
    let leaf = store
        .put(Codec::Raw, Bytes::from(vec![7u8; 100]))
        .await
        .unwrap();
    let gw = gateway(&store);
    let r = get(&gw, &format!("/ipfs/{leaf}?format=car&entity-bytes=10:*")).await;
    assert_eq!(cids_of(&r).await, vec![leaf]);
    let r = get(&gw, &format!("/ipfs/{leaf}?format=car&entity-bytes=-10:*")).await;
    assert_eq!(cids_of(&r).await, vec![leaf]);
    // Wholly past the end: the spec's 400.
    let r = get(
        &gw,
        &format!("/ipfs/{leaf}?format=car&entity-bytes=100:200"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A UnixFS file: block and all are served; entity (and so entity-bytes) needs UnixFS
    // knowledge this gateway does not have, and says so instead of sending the wrong set.
    let content: Vec<u8> = (0..5000u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let file = hamt::test_suite::unixfs_file(&store, &content, 1000).await;
    let block = get(&gw, &format!("/ipfs/{file}?format=car&dag-scope=block")).await;
    assert_eq!(cids_of(&block).await, vec![file]);
    let all = get(&gw, &format!("/ipfs/{file}?format=car")).await;
    assert_eq!(cids_of(&all).await.len(), 6);
    for q in ["dag-scope=entity", "entity-bytes=0:99"] {
        let r = get(&gw, &format!("/ipfs/{file}?format=car&{q}")).await;
        assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED, "{q}");
    }
}

#[tokio::test]
async fn car_order_and_dups_are_what_the_content_type_says() {
    let store = MemoryStore::new();
    let mut map = Hamt::new(Arc::new(store.clone()));
    // Ten distinct values under 400 keys: the walk meets each value block many times.
    map.extend((0..400).map(|i| (format!("key{i}"), format!("value {}", i % 10).into_bytes())))
        .await
        .unwrap();
    let root = map.flush().await.unwrap();
    let gw = gateway(&store);

    let default = get(&gw, &format!("/ipfs/{root}?format=car")).await;
    assert_eq!(
        default.header("content-type"),
        Some("application/vnd.ipld.car; version=1; order=dfs; dups=n")
    );
    let once = cids_of(&default).await;
    assert_eq!(once, dfs(&store, root, false).await);
    assert_eq!(once.iter().collect::<HashSet<_>>().len(), once.len());

    for (uri, accept) in [
        (format!("/ipfs/{root}?format=car&car-dups=y"), ""),
        (
            format!("/ipfs/{root}"),
            "application/vnd.ipld.car; version=1; order=dfs; dups=y",
        ),
        (
            format!("/ipfs/{root}?format=car"),
            "application/vnd.ipld.car; dups=y",
        ),
    ] {
        let headers: Vec<(&str, &str)> = if accept.is_empty() {
            vec![]
        } else {
            vec![("accept", accept)]
        };
        let r = call(&gw, "GET", &uri, &headers).await;
        assert_eq!(
            r.header("content-type"),
            Some("application/vnd.ipld.car; version=1; order=dfs; dups=y"),
            "{uri} {accept}"
        );
        let every = cids_of(&r).await;
        assert_eq!(every, dfs(&store, root, true).await, "{uri} {accept}");
        assert!(every.len() > once.len() + 300, "duplicates were sent");
        assert_ne!(r.header("etag"), default.header("etag"));
    }
    // What this gateway does not write is refused, not silently replaced.
    let r = get(&gw, &format!("/ipfs/{root}?format=car&car-version=2")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = get(&gw, &format!("/ipfs/{root}?format=car&car-order=bfs")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = call(
        &gw,
        "GET",
        &format!("/ipfs/{root}"),
        &[("accept", "application/vnd.ipld.car; version=2")],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    // order=unk admits any order, depth-first included.
    let r = get(&gw, &format!("/ipfs/{root}?format=car&car-order=unk")).await;
    assert_eq!(r.body, default.body);
}

#[tokio::test]
async fn the_car_probe_works_like_the_raw_probe() {
    let gw = gateway(&MemoryStore::new());
    let empty = hamt::parse_cid("bafkqaaa").unwrap();
    let raw = get(&gw, "/ipfs/bafkqaaa?format=raw").await;
    assert_eq!(raw.status, StatusCode::OK);
    assert!(raw.body.is_empty());
    for r in [
        get(&gw, "/ipfs/bafkqaaa?format=car").await,
        call(&gw, "GET", "/ipfs/bafkqaaa", &[("accept", CAR)]).await,
    ] {
        assert_eq!(r.status, StatusCode::OK);
        let (roots, blocks) = car_blocks(&r.body).await;
        assert_eq!(roots, vec![empty]);
        assert!(blocks.is_empty(), "identity blocks are never sent");
    }
    let head = call(&gw, "HEAD", "/ipfs/bafkqaaa?format=car", &[]).await;
    assert_eq!(head.status, StatusCode::OK);
}

#[tokio::test]
async fn content_location_names_the_format_negotiated_by_accept() {
    let store = MemoryStore::new();
    let cid = store.put(Codec::Raw, "x".into()).await.unwrap();
    let gw = gateway(&store);
    let uri = format!("/ipfs/{cid}");
    let r = call(&gw, "GET", &uri, &[("accept", RAW)]).await;
    assert_eq!(
        r.header("content-location"),
        Some(format!("{uri}?format=raw").as_str())
    );
    let r = call(&gw, "GET", &uri, &[("accept", CAR)]).await;
    assert_eq!(
        r.header("content-location"),
        Some(format!("{uri}?format=car").as_str())
    );
    let r = call(&gw, "GET", &format!("{uri}?format=raw"), &[("accept", RAW)]).await;
    assert_eq!(r.header("content-location"), None);
    let r = get(&gw, &uri).await;
    assert_eq!(r.header("content-location"), None);
    let r = call(
        &gw,
        "GET",
        &format!("{uri}?dag-scope=block"),
        &[("accept", CAR)],
    )
    .await;
    assert_eq!(
        r.header("content-location"),
        Some(format!("{uri}?dag-scope=block&format=car").as_str())
    );
}

#[tokio::test]
async fn only_if_cached_answers_412_for_a_missing_root() {
    let store = MemoryStore::new();
    let cid = store.put(Codec::Raw, "here".into()).await.unwrap();
    let missing = HashAlg::Blake3.cid(Codec::Raw, b"not here");
    let gw = gateway(&store);
    let cc = [("cache-control", "only-if-cached")];
    for method in ["GET", "HEAD"] {
        let r = call(&gw, method, &format!("/ipfs/{missing}"), &cc).await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{method}");
        assert!(r.body.is_empty());
        let r = call(&gw, method, &format!("/ipfs/{missing}?format=car"), &cc).await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{method} car");
        let r = call(&gw, method, &format!("/ipfs/{cid}"), &cc).await;
        assert_eq!(r.status, StatusCode::OK, "{method}");
    }
    let r = call(&gw, "GET", "/ipfs/bafkqaaa", &cc).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn if_none_match_compares_weakly() {
    let store = MemoryStore::new();
    let cid = store.put(Codec::Raw, "x".into()).await.unwrap();
    let missing = HashAlg::Blake3.cid(Codec::Raw, b"not here");
    let gw = gateway(&store);
    let uri = format!("/ipfs/{cid}?format=raw");
    let etag = get(&gw, &uri).await.header("etag").unwrap().to_owned();
    for given in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", W/{etag}"),
        "*".into(),
    ] {
        let r = call(&gw, "GET", &uri, &[("if-none-match", &given)]).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{given}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
    }
    let r = call(&gw, "GET", &uri, &[("if-none-match", "\"other\"")]).await;
    assert_eq!(r.status, StatusCode::OK);
    // `*` matches only what exists.
    let r = call(
        &gw,
        "GET",
        &format!("/ipfs/{missing}"),
        &[("if-none-match", "*")],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn head_of_a_car_claims_no_length() {
    let store = MemoryStore::new();
    let root = hamt_of(&store, 50, 10).await;
    let gw = gateway(&store);
    let r = call(&gw, "HEAD", &format!("/ipfs/{root}?format=car"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());
    assert_eq!(
        r.header("content-length"),
        None,
        "a CAR's length is unknown, not 0"
    );
    assert!(r.header("content-type").unwrap().starts_with(CAR));
    // On the wire too: hyper adds neither a length nor chunked framing to it.
    let server = gw.spawn("127.0.0.1:0").await.unwrap();
    let mut conn = common::send_raw(
        server.url(),
        &format!("HEAD /ipfs/{root}?format=car HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await;
    let (bytes, _) = common::read_until_closed(&mut conn, std::time::Duration::from_secs(5)).await;
    let head = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    server.shutdown().await.unwrap();
    // HEAD of a block keeps its real length.
    let r = call(&gw, "HEAD", &format!("/ipfs/{root}?format=raw"), &[]).await;
    let len = store.get(&root).await.unwrap().len().to_string();
    assert_eq!(r.header("content-length"), Some(len.as_str()));
}

#[tokio::test]
async fn accept_quality_values_are_honoured() {
    let store = MemoryStore::new();
    let root = hamt_of(&store, 10, 10).await;
    let gw = gateway(&store);
    let uri = format!("/ipfs/{root}");
    let r = call(
        &gw,
        "GET",
        &uri,
        &[("accept", &format!("{CAR};q=0.5, {RAW}"))],
    )
    .await;
    assert_eq!(r.header("content-type"), Some(RAW));
    let r = call(
        &gw,
        "GET",
        &uri,
        &[("accept", &format!("{RAW};q=0.5, {CAR}"))],
    )
    .await;
    assert!(r.header("content-type").unwrap().starts_with(CAR));
    let r = call(&gw, "GET", &uri, &[("accept", &format!("{RAW};q=0, */*"))]).await;
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.ipld.dag-cbor")
    );
}

/// A HAMT laid out as a Zarr store names its values: the one it holds for each key in
/// `values`, plus a UnixFS file (a value py-hamt's `KuboCAS` stores over 1 MiB) and 500 other
/// keys, so that paths go several nodes deep.
async fn zarr_like(store: &MemoryStore) -> (Cid, Vec<(String, Vec<u8>)>, Cid, Vec<u8>) {
    let doc = br#"{"zarr_format":3,"node_type":"array","shape":[4,4]}"#.to_vec();
    let values = vec![
        (
            "zarr.json".to_owned(),
            br#"{"zarr_format":3,"node_type":"group"}"#.to_vec(),
        ),
        ("t2m/zarr.json".to_owned(), doc),
        ("t2m/c/0/0".to_owned(), vec![1, 2, 3, 4, 5, 6, 7, 8]),
        ("with space/é".to_owned(), b"unicode".to_vec()),
    ];
    let mut map = Hamt::new(Arc::new(store.clone()));
    for (k, v) in &values {
        map.insert(k, v.clone()).await.unwrap();
    }
    for i in 0..500 {
        map.insert(&format!("t2m/c/{i}/1"), common::value(i, 50))
            .await
            .unwrap();
    }
    let content: Vec<u8> = (0..3000u32)
        .map(|i| u8::try_from(i % 253).unwrap())
        .collect();
    let file = hamt::test_suite::unixfs_file(store, &content, 1000).await;
    map.insert_pointer("big/file", file).await.unwrap();
    (map.flush().await.unwrap(), values, file, content)
}

#[tokio::test]
async fn a_path_names_a_key_of_the_hamt() {
    let store = MemoryStore::new();
    let (root, values, file, content) = zarr_like(&store).await;
    let gw = gateway(&store);
    for (key, value) in &values {
        let encoded = key.replace(' ', "%20").replace('é', "%C3%A9");
        let r = get(&gw, &format!("/ipfs/{root}/{encoded}")).await;
        assert_eq!(r.status, StatusCode::OK, "{key}");
        assert_eq!(&r.body[..], &value[..], "{key}");
        let pointer = HamtReader::open(Arc::new(store.clone()), root)
            .await
            .unwrap()
            .get_pointer(key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.header("etag"), Some(format!("\"{pointer}\"").as_str()));
    }
    let r = get(&gw, &format!("/ipfs/{root}/t2m/zarr.json")).await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("x-ipfs-path"),
        Some(format!("/ipfs/{root}/t2m/zarr.json").as_str())
    );
    // Ranges, as zarr readers send them.
    let r = call(
        &gw,
        "GET",
        &format!("/ipfs/{root}/t2m/c/0/0"),
        &[("range", "bytes=2-4")],
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], &[3, 4, 5]);
    // A value stored as a UnixFS file: its bytes, or with format=raw its root block.
    let r = get(&gw, &format!("/ipfs/{root}/big/file")).await;
    assert_eq!(&r.body[..], &content[..]);
    let r = get(&gw, &format!("/ipfs/{root}/big/file?format=raw")).await;
    assert_eq!(r.body, store.get(&file).await.unwrap());
    assert_eq!(r.header("etag"), Some(format!("\"{file}.raw\"").as_str()));
    let r = call(
        &gw,
        "GET",
        &format!("/ipfs/{root}/t2m/c/0/0"),
        &[("accept", RAW)],
    )
    .await;
    assert_eq!(&r.body[..], &[1, 2, 3, 4, 5, 6, 7, 8]);
}

#[tokio::test]
async fn a_path_car_holds_exactly_the_blocks_that_prove_the_value() {
    let store = MemoryStore::new();
    let (root, values, file, content) = zarr_like(&store).await;
    let gw = gateway(&store);
    for (key, value) in &values {
        let encoded = key.replace(' ', "%20").replace('é', "%C3%A9");
        let r = get(&gw, &format!("/ipfs/{root}/{encoded}?format=car")).await;
        let (roots, blocks) = car_blocks(&r.body).await;
        assert_eq!(roots, vec![root], "{key}");
        assert_eq!(blocks[0].0, root, "the path starts at the root");
        // The client walks from the root to the value with these blocks alone...
        let reader = HamtReader::open(only(&blocks, None).await, root)
            .await
            .unwrap();
        assert_eq!(
            reader.get(key).await.unwrap().as_deref(),
            Some(&value[..]),
            "{key}"
        );
        assert!(blocks.len() >= 2, "{key}: nodes on the way, then the value");
        // ... and every one of them is needed.
        for i in 0..blocks.len() {
            let partial = HamtReader::open(only(&blocks, Some(i)).await, root).await;
            let read = match partial {
                Ok(reader) => reader.get(key).await,
                Err(e) => Err(e),
            };
            assert!(
                read.is_err(),
                "{key}: block {i} of {} is not needed",
                blocks.len()
            );
        }
    }
    // Below a UnixFS value: the path, then the file's blocks as the scope says.
    let car = |q: &str| format!("/ipfs/{root}/big/file?format=car{q}");
    let (_, all) = car_blocks(&get(&gw, &car("")).await.body).await;
    let (_, block) = car_blocks(&get(&gw, &car("&dag-scope=block")).await.body).await;
    assert_eq!(all.len(), block.len() + 3, "the three chunks of the file");
    assert_eq!(block.last().unwrap().0, file);
    let reader = HamtReader::open(only(&all, None).await, root)
        .await
        .unwrap();
    assert_eq!(reader.get("big/file").await.unwrap().unwrap(), content);
    // Paths of different keys have different ETags.
    let a = get(&gw, &format!("/ipfs/{root}/zarr.json?format=car")).await;
    let b = get(&gw, &format!("/ipfs/{root}/t2m/zarr.json?format=car")).await;
    assert_ne!(a.header("etag"), b.header("etag"));
    assert_ne!(
        a.header("etag"),
        get(&gw, &format!("/ipfs/{root}?format=car"))
            .await
            .header("etag")
    );
}

#[tokio::test]
async fn paths_that_lead_nowhere_get_clear_errors() {
    let store = MemoryStore::new();
    let (root, _, _, _) = zarr_like(&store).await;
    let raw = store.put(Codec::Raw, "leaf".into()).await.unwrap();
    let file = hamt::test_suite::unixfs_file(&store, b"abc", 2).await;
    let gw = gateway(&store);
    let long = "k".repeat(5000);
    for (path, status) in [
        (format!("{root}/t2m/nothing"), StatusCode::NOT_FOUND),
        (format!("{root}/t2m"), StatusCode::NOT_FOUND),
        (
            format!("{root}/t2m/zarr.json/deeper"),
            StatusCode::BAD_REQUEST,
        ),
        (format!("{root}/t2m/c/0/0/x/y"), StatusCode::BAD_REQUEST),
        (format!("{root}/t2m/../zarr.json"), StatusCode::BAD_REQUEST),
        (format!("{root}/t2m%2Fzarr.json"), StatusCode::BAD_REQUEST),
        (format!("{root}/t2m//zarr.json"), StatusCode::BAD_REQUEST),
        (format!("{root}/{long}"), StatusCode::URI_TOO_LONG),
        (format!("{raw}/anything"), StatusCode::BAD_REQUEST),
        (format!("{file}/anything"), StatusCode::NOT_IMPLEMENTED),
    ] {
        for q in ["", "?format=raw", "?format=car"] {
            let r = get(&gw, &format!("/ipfs/{path}{q}")).await;
            assert_eq!(
                r.status,
                status,
                "{} {q}: {:?}",
                &path[..path.len().min(90)],
                r.body
            );
        }
    }
    // The 404 names the key.
    let r = get(&gw, &format!("/ipfs/{root}/t2m/nothing")).await;
    assert!(String::from_utf8_lossy(&r.body).contains("t2m/nothing"));
    // A root the store lacks is a 404 as for any CID.
    let missing = HashAlg::Blake3.cid(Codec::DagCbor, b"\xa0");
    assert_eq!(
        get(&gw, &format!("/ipfs/{missing}/k")).await.status,
        StatusCode::NOT_FOUND
    );
}
