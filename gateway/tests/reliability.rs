//! What a client can make the gateway hold: a CAR it does not read, a request it never
//! finishes, more connections than the gateway takes, and a CAR whose DAG breaks midway.
//! Each runs a real server on loopback and talks raw HTTP/1.1 to it, to see the wire.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Counting, End, get_request, hamt_of, parse_wire, read_until_closed, send_raw};
use hamt::{BlockStore, MemoryStore};
use hamt_gateway::GatewayBuilder;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpSocket, TcpStream};

const MIB: u64 = 1 << 20;

/// A connection whose receive buffer is small, so that the kernel takes little of what the
/// server sends once the client stops reading.
async fn stingy_client(url: &str, request: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    let mut conn = socket
        .connect(common::addr(url).parse().unwrap())
        .await
        .unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    conn
}

/// Waits until `f` holds, for at most `wait`.
async fn eventually(wait: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_car_nobody_reads_costs_a_few_blocks_not_the_car() {
    let memory = MemoryStore::new();
    // 1000 values of 64 KiB: a 64 MiB CAR.
    let root = hamt_of(&memory, 1000, 64 << 10).await;
    let store = Counting::new(memory.clone());
    let gateway = GatewayBuilder::new(store.clone()).build();
    let server = gateway.spawn("127.0.0.1:0").await.unwrap();

    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(
            stingy_client(
                server.url(),
                &get_request(&format!("/ipfs/{root}?format=car")),
            )
            .await,
        );
    }
    // Let the producers run as far as backpressure lets them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fetched = store.fetched();
    // Each stalled stream has fetched what the kernel's socket buffers took (the server's
    // send buffer tops out at a few MiB) and a block or two: never the 64 MiB CAR.
    assert!(
        fetched < 3 * 8 * MIB,
        "3 stalled clients made the gateway fetch {} MiB of a 64 MiB CAR",
        fetched / MIB
    );
    let before = fetched;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        store.fetched() - before < MIB,
        "fetching went on while nobody read"
    );

    // A stream that was held back is still whole once read.
    let mut conn = stalled.pop().unwrap();
    let (bytes, end) = read_until_closed(&mut conn, Duration::from_mins(1)).await;
    assert_eq!(end, End::Closed);
    let wire = parse_wire(&bytes);
    assert_eq!(wire.status, 200);
    assert!(wire.complete, "the chunked stream ended cleanly");
    let (roots, blocks) = common::car_blocks(&wire.body).await;
    assert_eq!(roots, vec![root]);
    assert_eq!(blocks.len(), memory.len());
    drop(stalled);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_whose_headers_never_finish_are_closed() {
    let store = MemoryStore::new();
    let cid = store.put(hamt::Codec::Raw, "hello".into()).await.unwrap();
    let gateway = GatewayBuilder::new(Arc::new(store))
        .header_timeout(Duration::from_millis(300))
        .build();
    let server = gateway.spawn("127.0.0.1:0").await.unwrap();

    // Nothing at all, half a request line, and headers without their blank line.
    let silent = send_raw(server.url(), "").await;
    let half_line = send_raw(server.url(), "GET /ipfs/").await;
    let half_headers = send_raw(
        server.url(),
        &format!("GET /ipfs/{cid} HTTP/1.1\r\nHost: x\r\n"),
    )
    .await;
    // A whole request on a kept-alive connection, then silence.
    let mut idle = send_raw(
        server.url(),
        &format!("GET /ipfs/{cid} HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    for mut conn in [silent, half_line, half_headers] {
        let (bytes, end) = read_until_closed(&mut conn, Duration::from_secs(5)).await;
        assert_ne!(end, End::StillOpen, "still open after 5 s: {bytes:?}");
        assert!(!bytes.starts_with(b"HTTP/1.1 200"));
    }
    let (bytes, end) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert_ne!(
        end,
        End::StillOpen,
        "an idle kept-alive connection stayed open"
    );
    assert!(
        bytes.starts_with(b"HTTP/1.1 200"),
        "the request was answered first"
    );
    assert!(gateway.metrics().header_timeouts() >= 4);
    assert!(
        eventually(Duration::from_secs(2), || gateway
            .metrics()
            .open_connections()
            == 0)
        .await
    );

    // A prompt client is served as ever.
    let mut conn = send_raw(server.url(), &get_request(&format!("/ipfs/{cid}"))).await;
    let (bytes, _) = read_until_closed(&mut conn, Duration::from_secs(5)).await;
    assert_eq!(parse_wire(&bytes).body, b"hello");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_an_idle_connection_makes_room() {
    let store = MemoryStore::new();
    let cid = store.put(hamt::Codec::Raw, "hello".into()).await.unwrap();
    let gateway = GatewayBuilder::new(Arc::new(store))
        .max_connections(3)
        .header_timeout(Duration::from_secs(30))
        .build();
    let server = gateway.spawn("127.0.0.1:0").await.unwrap();
    // Three half-sent requests take every slot; the first is the idlest.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(send_raw(server.url(), "GET /ipfs/").await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        eventually(Duration::from_secs(2), || gateway
            .metrics()
            .open_connections()
            == 3)
        .await
    );
    let mut newcomer = send_raw(server.url(), &get_request(&format!("/ipfs/{cid}"))).await;
    let (bytes, end) = read_until_closed(&mut newcomer, Duration::from_secs(3)).await;
    assert_eq!(end, End::Closed, "the newcomer was not served");
    assert_eq!(parse_wire(&bytes).body, b"hello");
    let (_, end) = read_until_closed(&mut idle[0], Duration::from_secs(2)).await;
    assert_ne!(end, End::StillOpen, "the idlest connection was not closed");
    let (_, end) = read_until_closed(&mut idle[2], Duration::from_millis(300)).await;
    assert_eq!(
        end,
        End::StillOpen,
        "a younger idle connection was closed too"
    );
    assert_eq!(gateway.metrics().connections_evicted(), 1);
    assert!(gateway.metrics().open_connections() <= 3);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_busy_connections_are_not_cut() {
    let memory = MemoryStore::new();
    let root = hamt_of(&memory, 400, 64 << 10).await;
    let cid = memory.put(hamt::Codec::Raw, "hello".into()).await.unwrap();
    let gateway = GatewayBuilder::new(Arc::new(memory))
        .max_connections(2)
        .build();
    let server = gateway.spawn("127.0.0.1:0").await.unwrap();
    // Two CAR downloads the clients do not read: busy, not idle.
    let car = get_request(&format!("/ipfs/{root}?format=car"));
    let mut busy = vec![
        stingy_client(server.url(), &car).await,
        stingy_client(server.url(), &car).await,
    ];
    // Both requests are in (their responses exist): the connections are busy from here on.
    assert!(eventually(Duration::from_secs(2), || gateway.metrics().requests() == 2).await);
    let mut waiting = send_raw(server.url(), &get_request(&format!("/ipfs/{cid}"))).await;
    let (bytes, end) = read_until_closed(&mut waiting, Duration::from_millis(700)).await;
    assert_eq!(end, End::StillOpen);
    assert!(
        bytes.is_empty(),
        "a third connection was served beyond the cap of 2"
    );
    assert_eq!(gateway.metrics().connections_evicted(), 0);
    drop(busy.pop());
    let (bytes, _) = read_until_closed(&mut waiting, Duration::from_secs(5)).await;
    assert_eq!(parse_wire(&bytes).body, b"hello");
    drop(busy);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_after_the_send_timeout() {
    let memory = MemoryStore::new();
    let root = hamt_of(&memory, 400, 64 << 10).await;
    let small = memory.put(hamt::Codec::Raw, "small".into()).await.unwrap();
    let gateway = GatewayBuilder::new(Arc::new(memory))
        .concurrency(1)
        .send_timeout(Duration::from_millis(500))
        .build();
    let server = gateway.spawn("127.0.0.1:0").await.unwrap();
    let _stalled = stingy_client(
        server.url(),
        &get_request(&format!("/ipfs/{root}?format=car")),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || gateway
            .metrics()
            .send_timeouts()
            == 1)
        .await,
        "the stalled stream was never cut"
    );
    assert!(
        eventually(Duration::from_secs(2), || gateway
            .metrics()
            .open_connections()
            == 0)
        .await
    );
    // Its concurrency permit came back with it: the only one there is.
    let mut conn = send_raw(server.url(), &get_request(&format!("/ipfs/{small}"))).await;
    let (bytes, _) = read_until_closed(&mut conn, Duration::from_secs(5)).await;
    assert_eq!(parse_wire(&bytes).body, b"small");
    server.shutdown().await.unwrap();
}

/// Copies `from` into a new store without `skip`, or with `replace` in its place.
fn damaged(from: &MemoryStore, victim: hamt::Cid, replace: Option<&'static [u8]>) -> MemoryStore {
    let out = MemoryStore::new().with_read_verification(false);
    for cid in from.cids() {
        let data = futures::executor::block_on(from.get(&cid)).unwrap();
        if cid == victim {
            if let Some(evil) = replace {
                out.insert_unchecked(cid, evil.into());
            }
        } else {
            out.insert_unchecked(cid, data);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_car_that_breaks_midway_ends_without_its_last_chunk() {
    let memory = MemoryStore::new();
    let root = hamt_of(&memory, 300, 2048).await;
    // A block late in the stream: the last one of a depth-first walk.
    let order = common::dfs(&memory, root, false).await;
    let victim = *order.last().unwrap();
    for (what, store) in [
        ("missing", damaged(&memory, victim, None)),
        ("corrupt", damaged(&memory, victim, Some(b"not the block"))),
    ] {
        let gateway = GatewayBuilder::new(Arc::new(store)).build();
        let server = gateway.spawn("127.0.0.1:0").await.unwrap();
        let mut conn = send_raw(
            server.url(),
            &get_request(&format!("/ipfs/{root}?format=car")),
        )
        .await;
        let (bytes, end) = read_until_closed(&mut conn, Duration::from_secs(10)).await;
        assert_ne!(end, End::StillOpen, "{what}");
        let wire = parse_wire(&bytes);
        assert_eq!(
            wire.status, 200,
            "{what}: the status went out with the root"
        );
        assert_eq!(wire.header("transfer-encoding"), Some("chunked"));
        assert!(
            !wire.complete,
            "{what}: a truncated CAR ended with the final chunk, as if whole"
        );
        // What did arrive is a CAR prefix of verified blocks, short of the victim.
        let mut reader = hamt::car::CarReader::new(&wire.body[..]).await.unwrap();
        let mut got = Vec::new();
        while let Ok(Some((cid, _))) = reader.next_block().await {
            got.push(cid);
        }
        assert!(!got.is_empty() && !got.contains(&victim), "{what}");
        assert_eq!(gateway.metrics().car_streams_cut(), 1, "{what}");
        server.shutdown().await.unwrap();
    }
}
