//! A small load with attackers, in process: a few clients whose every response is compared
//! byte for byte, while a handful of clients hold CAR streams they never read and others
//! leave requests half-sent. No wrong byte, no failed request, and the process's memory stays
//! bounded (not the CARs' size) and comes back once the attackers leave. Timing is not
//! asserted here; `cargo xtask bench gateway` measures it at scale.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]
#![cfg(target_os = "linux")]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Copying, KeepAlive, hamt_of, rss, send_raw, value};
use hamt::{HamtReader, MemoryStore};
use hamt_gateway::GatewayBuilder;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpSocket;

const MIB: u64 = 1 << 20;
const KEYS: usize = 256;
const VALUE: usize = 64 << 10;

type Paths = Arc<Vec<(String, Vec<u8>)>>;

/// 8 clients, `rounds` requests each, every body compared: (wrong bodies, failed requests).
async fn load(url: &str, paths: &Paths, rounds: usize) -> (usize, usize) {
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (paths, url) = (paths.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut client = KeepAlive::connect(&url).await;
                let (mut wrong, mut failed) = (0, 0);
                for r in 0..rounds {
                    let (path, want) = &paths[(c * 7919 + r * 31) % paths.len()];
                    match client.get(path).await {
                        Some((200, body)) if body == *want => {}
                        Some((200, _)) => wrong += 1,
                        _ => {
                            failed += 1;
                            client = KeepAlive::connect(&url).await;
                        }
                    }
                }
                (wrong, failed)
            })
        })
        .collect();
    let mut totals = (0, 0);
    for c in clients {
        let (w, f) = c.await.unwrap();
        totals = (totals.0 + w, totals.1 + f);
    }
    totals
}

/// 5 clients that ask for the CAR of `root` and never read it (a small receive buffer, so
/// that the kernel takes little), and 20 that leave a request half-sent.
async fn attack(url: &str, root: hamt::Cid) -> Vec<tokio::net::TcpStream> {
    let mut attackers = Vec::new();
    for _ in 0..5 {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(16 << 10).unwrap();
        let mut conn = socket
            .connect(common::addr(url).parse().unwrap())
            .await
            .unwrap();
        let request = format!("GET /ipfs/{root}?format=car HTTP/1.1\r\nHost: x\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        attackers.push(conn);
    }
    for _ in 0..20 {
        attackers.push(send_raw(url, "GET /ipfs/ HTTP/1.1\r\nHost: x\r\n").await);
    }
    attackers
}

/// Runs `work`, sampling this process's memory; its output and the peak.
async fn peak_rss_while<T>(work: impl std::future::Future<Output = T>) -> (T, u64) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        }
    });
    let out = work.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    (out, sampler.await.unwrap().max(rss()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legitimate_clients_get_every_byte_while_attackers_hold_bounded_memory() {
    let store = MemoryStore::new();
    // A 16 MiB CAR: each stalled client of the old gateway held all of it, and more.
    let root = hamt_of(&store, KEYS, VALUE).await;
    let reader = HamtReader::open(Arc::new(store.clone()), root)
        .await
        .unwrap();
    let mut expected: HashMap<String, Vec<u8>> = HashMap::new();
    for i in 0..KEYS {
        let v = value(i, VALUE);
        let cid = reader.get_pointer(&format!("k{i}")).await.unwrap().unwrap();
        expected.insert(format!("/ipfs/{root}/k{i}"), v.clone());
        expected.insert(format!("/ipfs/{cid}"), v.clone());
        expected.insert(format!("/ipfs/{cid}?format=raw"), v);
    }
    let paths: Paths = Arc::new(expected.into_iter().collect());
    let gateway = GatewayBuilder::new(Arc::new(Copying(store.clone()))).build();
    let server = gateway.spawn("127.0.0.1:0").await.unwrap();
    let url = server.url().to_owned();

    // Warm up, then take the base.
    assert_eq!(load(&url, &paths, 50).await, (0, 0));
    let base = rss();

    let attackers = attack(&url, root).await;
    let ((wrong, failed), peak) = peak_rss_while(load(&url, &paths, 250)).await;
    assert_eq!(wrong, 0, "wrong bytes under attack");
    assert_eq!(failed, 0, "failed requests under attack");
    assert!(
        gateway.metrics().open_connections() >= 25,
        "the attackers were connected throughout"
    );
    let growth = peak.saturating_sub(base);
    assert!(
        growth < 48 * MIB,
        "5 stalled 16 MiB CARs and 20 half-sent requests grew memory by {} MiB",
        growth / MIB
    );

    drop(attackers);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while gateway.metrics().open_connections() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gateway.metrics().open_connections(), 0);
    // The burst is over: within a few seconds the freed heap goes back to the system.
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while gateway.metrics().heap_trims() == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            gateway.metrics().heap_trims() >= 1,
            "no trim after the burst"
        );
    }
    let after = rss();
    assert!(
        after < base + 16 * MIB,
        "memory after the attackers left: {} MiB over the base",
        after.saturating_sub(base) / MIB
    );
    eprintln!(
        "base {} MiB, peak +{} MiB, after +{} MiB",
        base / MIB,
        growth / MIB,
        after.saturating_sub(base) / MIB
    );
    server.shutdown().await.unwrap();
}
