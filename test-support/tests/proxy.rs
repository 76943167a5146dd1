//! The proxy between a real HTTP client (reqwest) and a real HTTP server (axum), and between
//! raw TCP peers: bytes pass unchanged without faults, each fault does what it says, shaping
//! slows traffic at least as much as asked (checked coarsely, from below), settings change
//! while it runs, and dropping it closes everything.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::routing::{get, post};
use hamt_test_support::proxy::{Direction, Fault, Protocol, Proxy, Rule, Shaping};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Deterministic, varied content: a proxy that shifts or drops a byte cannot match it.
fn content(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| u8::try_from((i * 7 + i / 251) % 256).unwrap())
        .collect()
}

/// An HTTP service: `GET /bytes/N` (Content-Length), `GET /chunked/N` (chunked, in pieces),
/// `POST /echo`, counting the requests it sees.
struct Service {
    addr: SocketAddr,
    seen: Arc<AtomicU64>,
}

async fn service() -> Service {
    let seen = Arc::new(AtomicU64::new(0));
    let count = |seen: &Arc<AtomicU64>| {
        let seen = seen.clone();
        move || {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    };
    let (c1, c2, c3) = (count(&seen), count(&seen), count(&seen));
    let app = axum::Router::new()
        .route(
            "/bytes/{n}",
            get(move |Path(n): Path<usize>| async move {
                c1();
                content(n)
            }),
        )
        .route(
            "/chunked/{n}",
            get(move |Path(n): Path<usize>| async move {
                c2();
                let pieces: Vec<Result<Bytes, std::convert::Infallible>> = content(n)
                    .chunks(7000)
                    .map(|c| Ok(Bytes::copy_from_slice(c)))
                    .collect();
                Body::from_stream(futures::stream::iter(pieces))
            }),
        )
        .route(
            "/echo",
            post(move |body: Bytes| async move {
                c3();
                body
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Service { addr, seen }
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

async fn fetch(client: &reqwest::Client, url: String) -> reqwest::Result<(u16, Vec<u8>)> {
    let response = client.get(url).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.bytes().await?.to_vec()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bytes_pass_unchanged_without_faults() {
    let service = service().await;
    let proxy = Proxy::start(service.addr, Protocol::Http).await.unwrap();
    let http = client(Duration::from_secs(30));
    for n in [0, 1, 100, 65_536, 1_000_003] {
        for kind in ["bytes", "chunked"] {
            let (status, body) = fetch(&http, format!("{}/{kind}/{n}", proxy.url()))
                .await
                .unwrap();
            assert_eq!((status, body.len()), (200, n), "{kind}/{n}");
            assert!(body == content(n), "{kind}/{n}: the body changed");
        }
    }
    let upload = content(300_000);
    let echoed = http
        .post(format!("{}/echo", proxy.url()))
        .body(upload.clone())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(echoed == upload);
    // A chunked request, written by hand, passes too, on a kept-alive connection.
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    conn.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .await
        .unwrap();
    conn.write_all(b"GET /bytes/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).await.unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert_eq!(reply.matches("HTTP/1.1 200").count(), 2, "{reply}");
    assert!(reply.contains("\r\n\r\nhello"), "{reply}");
    let stats = proxy.stats();
    assert_eq!(stats.faults, 0);
    assert_eq!(stats.requests, service.seen.load(Ordering::SeqCst));
}

/// An echo service on raw TCP.
async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Reads until the end of the stream or an error, and says which.
async fn read_all(conn: &mut TcpStream) -> (Vec<u8>, Option<std::io::ErrorKind>) {
    let mut got = Vec::new();
    let mut buf = vec![0; 8192];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(30), conn.read(&mut buf))
            .await
            .unwrap();
        match read {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Some(e.kind())),
        }
    }
}

/// Sends `data` to `addr`, half-closes, and reads until the end (or an error).
async fn round_trip(addr: SocketAddr, data: &[u8]) -> (Vec<u8>, Option<std::io::ErrorKind>) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = conn.split();
    let write = async {
        let _ = w.write_all(data).await;
        let _ = w.shutdown().await;
    };
    let read = async {
        let mut got = Vec::new();
        let mut buf = vec![0; 8192];
        loop {
            match r.read(&mut buf).await {
                Ok(0) => return (got, None),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return (got, Some(e.kind())),
            }
        }
    };
    let ((), result) =
        tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(write, read) })
            .await
            .unwrap();
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_bytes_pass_unchanged_and_tcp_faults_hit_connections() {
    let proxy = Proxy::start(echo().await, Protocol::Tcp).await.unwrap();
    let data = content(2_000_000);
    let (got, error) = round_trip(proxy.addr(), &data).await;
    assert_eq!(error, None);
    assert!(got == data, "the echoed bytes changed");

    proxy.set_faults([Rule::new(Fault::Truncate { after: 10_000 }).first(1)]);
    let (got, error) = round_trip(proxy.addr(), &data).await;
    assert_eq!(
        (got.len(), error),
        (10_000, None),
        "a clean close after 10 000 bytes"
    );
    assert!(got[..] == data[..10_000]);
    // Only the first connection was selected.
    let (got, _) = round_trip(proxy.addr(), &data).await;
    assert_eq!(got.len(), data.len());

    proxy.set_faults([Rule::new(Fault::Drop { after: 5_000 })]);
    let (got, error) = round_trip(proxy.addr(), &data).await;
    assert_eq!(got.len(), 5_000);
    assert_eq!(error, Some(std::io::ErrorKind::ConnectionReset));

    proxy.set_faults([Rule::new(Fault::Flip { at: 77_777 })]);
    let (got, _) = round_trip(proxy.addr(), &data).await;
    let differ: Vec<usize> = (0..data.len()).filter(|&i| got[i] != data[i]).collect();
    assert_eq!(differ, vec![77_777]);
    assert_eq!(got[77_777], data[77_777] ^ 1);
    assert_eq!(proxy.stats().faults, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_faults_answer_in_place_of_the_service() {
    let service = service().await;
    let proxy = Proxy::start(service.addr, Protocol::Http).await.unwrap();
    let http = client(Duration::from_secs(10));
    proxy.set_faults([Rule::new(Fault::Status(503)).first(2)]);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        // A POST with a body: the proxy reads it and drops it, the client is not cut off.
        let response = http
            .post(format!("{}/echo", proxy.url()))
            .body(content(100_000))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [503, 503, 200, 200]);
    assert_eq!(
        service.seen.load(Ordering::SeqCst),
        2,
        "the service saw the faulted requests"
    );

    // A fraction, spread evenly: every other request.
    proxy.set_faults([Rule::new(Fault::Status(500)).fraction(0.5)]);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            fetch(&http, format!("{}/bytes/10", proxy.url()))
                .await
                .unwrap()
                .0,
        );
    }
    assert_eq!(statuses, [200, 500, 200, 500, 200, 500]);

    // Rules match methods and paths.
    proxy.set_faults([Rule::new(Fault::Status(500))
        .method("POST")
        .path_contains("/echo")]);
    assert_eq!(
        fetch(&http, format!("{}/bytes/10", proxy.url()))
            .await
            .unwrap()
            .0,
        200
    );
    let post = http
        .post(format!("{}/echo", proxy.url()))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 500);
    assert_eq!(proxy.stats().faults, 2 + 3 + 1);
    let log = proxy.requests();
    assert_eq!(log.len(), 4 + 6 + 2);
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str()),
        ("POST", "/echo")
    );
    assert_eq!(log[0].fault, Some(Fault::Status(503)));
    assert_eq!(log[2].fault, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_outlasts_the_clients_timeout_and_ends() {
    let service = service().await;
    let proxy = Proxy::start(service.addr, Protocol::Http).await.unwrap();
    proxy.set_faults([Rule::new(Fault::Stall(Duration::from_secs(3))).first(1)]);
    let http = client(Duration::from_millis(300));
    let started = Instant::now();
    let err = fetch(&http, format!("{}/bytes/10", proxy.url()))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the client's timeout ended it"
    );
    assert_eq!(
        fetch(&http, format!("{}/bytes/10", proxy.url()))
            .await
            .unwrap(),
        (200, content(10))
    );
    // A client that waits longer than the stall gets its answer.
    proxy.set_faults([Rule::new(Fault::Stall(Duration::from_millis(400)))]);
    let started = Instant::now();
    let patient = client(Duration::from_secs(30));
    assert_eq!(
        fetch(&patient, format!("{}/bytes/10", proxy.url()))
            .await
            .unwrap(),
        (200, content(10))
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_resets_the_connection_mid_body() {
    let service = service().await;
    let proxy = Proxy::start(service.addr, Protocol::Http).await.unwrap();
    let http = client(Duration::from_secs(10));
    for kind in ["bytes", "chunked"] {
        proxy.set_faults([Rule::new(Fault::Drop { after: 20_000 }).first(1)]);
        let err = fetch(&http, format!("{}/{kind}/100000", proxy.url()))
            .await
            .unwrap_err();
        assert!(err.is_body() || err.is_decode(), "{kind}: {err:?}");
        // The next request, on a new connection, is whole.
        let (_, body) = fetch(&http, format!("{}/{kind}/100000", proxy.url()))
            .await
            .unwrap();
        assert!(body == content(100_000));
    }
    // On the wire: the head and 20 000 body bytes, then a reset.
    proxy.set_faults([Rule::new(Fault::Drop { after: 20_000 })]);
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    conn.write_all(b"GET /bytes/100000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, error) = read_all(&mut conn).await;
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(got.len() - head_end, 20_000);
    assert_eq!(error, Some(std::io::ErrorKind::ConnectionReset));
    // A body no longer than the offset passes whole, and the fault does not count.
    let faults = proxy.stats().faults;
    assert_eq!(
        fetch(&http, format!("{}/bytes/20000", proxy.url()))
            .await
            .unwrap()
            .1
            .len(),
        20_000
    );
    assert_eq!(proxy.stats().faults, faults);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_ends_the_body_early_as_if_complete() {
    let service = service().await;
    let proxy = Proxy::start(service.addr, Protocol::Http).await.unwrap();
    let http = client(Duration::from_secs(10));
    for kind in ["bytes", "chunked"] {
        proxy.set_faults([Rule::new(Fault::Truncate { after: 12_345 }).first(1)]);
        let (status, body) = fetch(&http, format!("{}/{kind}/100000", proxy.url()))
            .await
            .unwrap();
        assert_eq!((status, body.len()), (200, 12_345), "{kind}");
        assert!(body[..] == content(100_000)[..12_345], "{kind}");
        // The connection stays usable: the rest of the real body was dropped, not sent.
        let (_, body) = fetch(&http, format!("{}/{kind}/100000", proxy.url()))
            .await
            .unwrap();
        assert!(body == content(100_000), "{kind}");
    }
    assert_eq!(proxy.stats().faults, 2);
    // On the wire: the truncated response is well framed and the rest of the real body is
    // dropped, so the next response on the same connection is whole.
    for kind in ["bytes", "chunked"] {
        proxy.set_faults([Rule::new(Fault::Truncate { after: 12_345 }).first(1)]);
        let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
        let requests = format!(
            "GET /{kind}/100000 HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        conn.write_all(requests.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
        let second = got.windows(8).rposition(|w| w == b"HTTP/1.1").unwrap();
        let first_body = &got[head_end..second];
        if kind == "bytes" {
            assert!(head.contains("content-length: 12345"), "{head}");
            assert!(first_body == &content(100_000)[..12_345]);
        } else {
            assert!(
                first_body.ends_with(b"\r\n0\r\n\r\n"),
                "{kind}: the chunked body did not end"
            );
        }
        assert!(
            got.ends_with(&content(10)),
            "{kind}: the second response is not whole"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flip_changes_exactly_one_body_byte() {
    let service = service().await;
    let proxy = Proxy::start(service.addr, Protocol::Http).await.unwrap();
    let http = client(Duration::from_secs(10));
    let real = content(100_000);
    for kind in ["bytes", "chunked"] {
        proxy.set_faults([Rule::new(Fault::Flip { at: 54_321 })]);
        let (_, body) = fetch(&http, format!("{}/{kind}/100000", proxy.url()))
            .await
            .unwrap();
        let differ: Vec<usize> = (0..real.len()).filter(|&i| body[i] != real[i]).collect();
        assert_eq!(differ, vec![54_321], "{kind}");
        assert_eq!(body[54_321], real[54_321] ^ 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_and_bandwidth_slow_traffic_and_change_while_running() {
    let service = service().await;
    let proxy = Proxy::start(service.addr, Protocol::Http).await.unwrap();
    let http = client(Duration::from_mins(1));
    let url = format!("{}/bytes/200000", proxy.url());
    fetch(&http, url.clone()).await.unwrap();

    // A delay each way: a request and its response take at least both.
    proxy.shape(
        Direction::ToService,
        Shaping::delay(Duration::from_millis(150)),
    );
    proxy.shape(
        Direction::ToClient,
        Shaping::delay(Duration::from_millis(150)),
    );
    let started = Instant::now();
    assert_eq!(fetch(&http, url.clone()).await.unwrap().1.len(), 200_000);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    // 200 kB at 250 kB/s take at least 0.8 s less one burst (20 ms of the rate).
    proxy.shape(Direction::ToService, Shaping::default());
    proxy.shape(Direction::ToClient, Shaping::default().bandwidth(250_000));
    let started = Instant::now();
    let body = fetch(&http, url.clone()).await.unwrap().1;
    assert!(body == content(200_000), "shaping changed the bytes");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );

    // Lifting the cap mid-transfer: 2 MB at 100 kB/s would take 20 s.
    proxy.shape(Direction::ToClient, Shaping::default().bandwidth(100_000));
    let started = Instant::now();
    let slow = tokio::spawn({
        let http = http.clone();
        let url = format!("{}/bytes/2000000", proxy.url());
        async move { fetch(&http, url).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.shape(Direction::ToClient, Shaping::default());
    assert_eq!(slow.await.unwrap().unwrap().1.len(), 2_000_000);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_proxy_closes_its_port_and_connections() {
    let service = service().await;
    let proxy = Proxy::start(service.addr, Protocol::Http).await.unwrap();
    let addr = proxy.addr();
    // An open connection, mid-response: stalled for a minute.
    proxy.set_faults([Rule::new(Fault::Stall(Duration::from_mins(1)))]);
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(proxy);
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("the connection was left open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the port still accepts"
    );
}

/// Without a runtime of the caller's: the proxy runs on its own thread.
#[test]
fn a_proxy_on_its_own_thread_serves_blocking_callers() {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).unwrap();
        conn.write_all(&buf).unwrap();
    });
    let proxy = Proxy::start_on_thread(upstream, Protocol::Tcp).unwrap();
    let mut conn = std::net::TcpStream::connect(proxy.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"hello").unwrap();
    let mut got = [0u8; 5];
    conn.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello");
    server.join().unwrap();
    let addr = proxy.addr();
    drop(proxy);
    assert!(std::net::TcpStream::connect(addr).is_err());
}

/// Pipelined requests on one connection: each response gets its own request's fault, even
/// when the service answers the next before the proxy has passed the last one on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_each_get_their_own_fault() {
    let service = service().await;
    let proxy = Proxy::start(service.addr, Protocol::Http).await.unwrap();
    proxy.set_faults([Rule::new(Fault::Flip { at: 0 }).path_contains("/bytes/5")]);
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    conn.write_all(
        b"GET /bytes/4 HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/5 HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/6 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let (got, error) = read_all(&mut conn).await;
    assert_eq!(error, None);
    let mut flipped = content(5);
    flipped[0] ^= 1;
    assert_eq!(bodies(&got), vec![content(4), flipped, content(6)]);
}

/// The bodies of a stream of `Content-Length` responses.
fn bodies(mut stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !stream.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head) = response.parse(stream).unwrap() else {
            panic!("a partial response head");
        };
        let len: usize = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .unwrap();
        out.push(stream[head..head + len].to_vec());
        stream = &stream[head + len..];
    }
    out
}

/// A long delay does not lower throughput: the proxy holds a delay's worth of bytes in
/// flight, however small the pieces it reads, so a long response is not held to a few
/// reads per delay. 32 MB behind 150 ms each way: with at most 16 pieces of 64 KiB in
/// flight (the old queue) at most about 11 MB could pass in the first 1.5 s; all of it
/// passes when the queue holds bytes rather than pieces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_delay_keeps_a_delays_worth_of_bytes_in_flight() {
    const N: usize = 32_000_000;
    let service = service().await;
    let proxy = Proxy::start(service.addr, Protocol::Http).await.unwrap();
    let delay = Shaping::delay(Duration::from_millis(150));
    proxy.shape(Direction::ToService, delay);
    proxy.shape(Direction::ToClient, delay);
    let http = client(Duration::from_mins(1));
    let fetching = tokio::spawn({
        let url = format!("{}/bytes/{N}", proxy.url());
        async move { fetch(&http, url).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let moved = proxy.stats().bytes_to_client;
    let (status, body) = fetching.await.unwrap().unwrap();
    assert_eq!((status, body.len()), (200, N));
    assert!(body == content(N), "the body changed");
    assert!(
        moved >= 20_000_000,
        "only {moved} bytes passed in 1.5 s behind a 150 ms delay"
    );
}

/// The bandwidth cap is the link's: connections at once share it rather than each getting
/// the whole. 4 × 500 kB at 1 MB/s take at least 2 s less a burst, however many
/// connections carry them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_share_the_bandwidth_cap() {
    let service = service().await;
    let proxy = Proxy::start(service.addr, Protocol::Http).await.unwrap();
    proxy.shape(Direction::ToClient, Shaping::default().bandwidth(1_000_000));
    let started = Instant::now();
    let fetches: Vec<_> = (0..4)
        .map(|_| {
            // A client each: four connections at once.
            let http = client(Duration::from_mins(1));
            let url = format!("{}/bytes/500000", proxy.url());
            tokio::spawn(async move { fetch(&http, url).await })
        })
        .collect();
    for f in fetches {
        let (status, body) = f.await.unwrap().unwrap();
        assert_eq!(status, 200);
        assert!(body == content(500_000), "the body changed");
    }
    assert!(proxy.stats().connections >= 4);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
}
