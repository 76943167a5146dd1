//! `hamt serve` (its own process, over sled) under a bounded loopback load while attackers
//! hold it: 100 clients that ask for a 13.9 MB CAR and never read it, and 300 that leave a
//! request half-sent. Measured against the same server unloaded, in the same run: every
//! legitimate response compared byte for byte, p50/p99 latency, the server's resident
//! memory (base, peak under attack, after the attackers leave). Then the same attack on a
//! server limited to 256 open files (`ulimit -n 256`), where the connection cap is reached.
//! Run by `cargo xtask bench gateway`, which passes `HAMT_BENCH_HAMT_BIN` (a release
//! `hamt`). Loopback only; every loop is bounded.
//!
//! `gateway_attack [--quick]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hamt::{BlockStore, Cid, Hamt, HamtReader};
use hamt_store_sled::SledStore;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpSocket, TcpStream};

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const MIB: f64 = 1024.0 * 1024.0;

/// What the legitimate clients ask for, and the bytes each answer must be.
type Targets = Arc<Vec<(String, Vec<u8>)>>;

/// The dataset: 212 chunks of 64 KiB under `t2m/c/` (a 13.9 MB CAR, the size) and
/// 1000 small values under `meta/`; the legitimate requests: raw values by CID, values by
/// path, small and large.
async fn dataset(db: &std::path::Path) -> BoxResult<(Cid, Targets)> {
    let sled: Arc<dyn BlockStore> = Arc::new(SledStore::open(db)?);
    let mut map = Hamt::new(sled.clone());
    let fill = |i: usize, len: usize| -> Vec<u8> {
        (0..len)
            .map(|j| u8::try_from((i * 131 + j * 7) % 251).unwrap_or(0))
            .collect()
    };
    let chunks: Vec<(String, Vec<u8>)> = (0..212)
        .map(|i| (format!("t2m/c/{i}/0"), fill(i, 64 << 10)))
        .collect();
    let meta: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|i| (format!("meta/{i}"), fill(i + 7, 1024)))
        .collect();
    map.extend(
        chunks
            .iter()
            .chain(&meta)
            .map(|(k, v)| (k.as_str(), v.clone())),
    )
    .await?;
    let root = map.flush().await?;
    sled.sync().await?;
    let reader = HamtReader::open(sled.clone(), root).await?;
    let mut targets = Vec::new();
    for (key, value) in &meta {
        let cid = reader.get_pointer(key).await?.ok_or("a key went missing")?;
        targets.push((format!("/ipfs/{cid}?format=raw"), value.clone()));
        targets.push((format!("/ipfs/{cid}"), value.clone()));
        targets.push((format!("/ipfs/{root}/{key}"), value.clone()));
    }
    for (key, value) in chunks.iter().step_by(4) {
        targets.push((format!("/ipfs/{root}/{key}"), value.clone()));
    }
    Ok((root, Arc::new(targets)))
}

/// A `hamt serve` process; killed when dropped.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Server {
    async fn start(bin: &str, db: &std::path::Path, open_files: Option<u32>) -> BoxResult<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = if let Some(limit) = open_files {
            let mut c = std::process::Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                .arg(bin);
            c
        } else {
            std::process::Command::new(bin)
        };
        cmd.arg("--store")
            .arg(format!("sled:{}", db.display()))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "error");
        let child = cmd.spawn()?;
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("hamt serve did not start".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(server)
    }

    /// The server's resident memory in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    /// A counter or gauge of `/metrics`.
    async fn metric(&self, name: &str) -> f64 {
        let Ok(text) = reqwest::get(format!("{}/metrics", self.url)).await else {
            return f64::NAN;
        };
        let text = text.text().await.unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        hamt_test_support::terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// One run of the legitimate load.
#[derive(Debug, Default)]
struct Load {
    requests: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    wrong: usize,
    failed: usize,
}

/// `requests` requests from `clients` concurrent clients, every body compared.
async fn load(url: &str, targets: &Targets, clients: usize, requests: usize) -> Load {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_mins(1))
        .pool_max_idle_per_host(clients)
        .build()
        .expect("HTTP client");
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (client, next, targets, url) = (
                client.clone(),
                next.clone(),
                targets.clone(),
                url.to_owned(),
            );
            tokio::spawn(async move {
                let (mut latencies, mut wrong, mut failed) = (Vec::new(), 0, 0);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let (path, want) = &targets[(i * 7919) % targets.len()];
                    let t = Instant::now();
                    match client.get(format!("{url}{path}")).send().await {
                        Ok(r) if r.status().is_success() => match r.bytes().await {
                            Ok(body) if body[..] == want[..] => {}
                            Ok(_) => wrong += 1,
                            Err(_) => failed += 1,
                        },
                        _ => failed += 1,
                    }
                    latencies.push(t.elapsed().as_secs_f64());
                }
                (latencies, wrong, failed)
            })
        })
        .collect();
    let mut out = Load {
        requests,
        ..Load::default()
    };
    let mut latencies = Vec::with_capacity(requests);
    for w in workers {
        let (l, wrong, failed) = w.await.expect("load worker");
        latencies.extend(l);
        out.wrong += wrong;
        out.failed += failed;
    }
    out.seconds = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |per_mille: usize| {
        let rank = latencies.len().saturating_sub(1) * per_mille / 1000;
        latencies.get(rank).copied().unwrap_or(f64::NAN) * 1e3
    };
    out.p50_ms = pct(500);
    out.p99_ms = pct(990);
    out
}

/// Clients that ask for the CAR of `root` and never read (a small receive buffer, so that
/// the kernel takes little), and clients that leave a request half-sent.
async fn attack(
    url: &str,
    root: Cid,
    stalled: usize,
    half_sent: usize,
) -> BoxResult<Vec<TcpStream>> {
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse()?;
    let mut out = Vec::new();
    for _ in 0..stalled {
        let socket = TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(16 << 10)?;
        let mut conn = socket.connect(addr).await?;
        conn.write_all(
            format!("GET /ipfs/{root}?format=car HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .await?;
        out.push(conn);
    }
    for _ in 0..half_sent {
        let mut conn = TcpStream::connect(addr).await?;
        conn.write_all(b"GET /ipfs/").await?;
        out.push(conn);
    }
    Ok(out)
}

/// Runs `work` while sampling `server`'s memory every 50 ms; its output and the peak.
async fn peak_rss<T>(server: &Server, work: impl std::future::Future<Output = T>) -> (T, u64) {
    let stop = AtomicBool::new(false);
    let sample = async {
        let mut peak = server.rss();
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(server.rss());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peak
    };
    let run = async {
        let out = work.await;
        stop.store(true, Ordering::Relaxed);
        out
    };
    let (out, peak) = tokio::join!(run, sample);
    (out, peak.max(server.rss()))
}

/// The load while `stalled` CAR readers and `half_sent` requests hold `server`: the load,
/// the peak memory, the connections open during it, and the memory 3 s after the attackers
/// left.
async fn attack_round(
    server: &Server,
    root: Cid,
    targets: &Targets,
    (clients, requests): (usize, usize),
    (stalled, half_sent): (usize, usize),
) -> BoxResult<(Load, u64, f64, u64)> {
    let attackers = attack(&server.url, root, stalled, half_sent).await?;
    // The stalled streams first fill their sockets' buffers (some 4 MB each on loopback):
    // measured here is the load while they hold the server, after that burst.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (attacked, peak) = peak_rss(server, load(&server.url, targets, clients, requests)).await;
    let open = server.metric("hamt_gateway_open_connections").await;
    drop(attackers);
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok((attacked, peak, open, server.rss()))
}

/// The attack on a server that may open 256 files: its connection cap (3/4 of that) is
/// reached, and idle attackers must make room. The load unloaded, under attack, and how many
/// idle connections the server closed.
async fn at_256_files(
    bin: &str,
    db: &std::path::Path,
    root: Cid,
    targets: &Targets,
    (stalled, half_sent): (usize, usize),
    requests: usize,
) -> BoxResult<(Load, Load, f64)> {
    let limited = Server::start(bin, db, Some(256)).await?;
    let small = (requests / 10).max(500);
    load(&limited.url, targets, 8, small / 10).await;
    let calm = load(&limited.url, targets, 8, small).await;
    let attackers = attack(&limited.url, root, stalled, half_sent).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let attacked = load(&limited.url, targets, 8, small).await;
    let evicted = limited
        .metric("hamt_gateway_closed_connections_total{reason=\"evicted_idle\"}")
        .await;
    drop(attackers);
    Ok((calm, attacked, evicted))
}

#[allow(clippy::cast_precision_loss)]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

fn verdict(ok: bool) -> &'static str {
    if ok { "meets target" } else { "MISSES target" }
}

// One run, then one report: its lines read best in one place.
#[allow(clippy::too_many_lines)]
#[tokio::main]
async fn main() -> BoxResult<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let bin = std::env::var("HAMT_BENCH_HAMT_BIN")
        .map_err(|_| "HAMT_BENCH_HAMT_BIN is not set: run with `cargo xtask bench gateway`")?;
    let (clients, requests, stalled, half_sent) = if quick {
        (16, 2000, 10, 30)
    } else {
        (64, 20_000, 100, 300)
    };
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("db");
    let (root, targets) = dataset(&db).await?;

    // 1. Unloaded, then under attack, on one server.
    let server = Server::start(&bin, &db, None).await?;
    load(&server.url, &targets, clients, requests / 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = server.rss();
    let calm = load(&server.url, &targets, clients, requests).await;
    let (attacked, peak, open_during, after) = attack_round(
        &server,
        root,
        &targets,
        (clients, requests),
        (stalled, half_sent),
    )
    .await?;
    let open_after = server.metric("hamt_gateway_open_connections").await;
    // Again: what the first attack left is reused, not added to.
    let (again, peak_again, _, after_again) = attack_round(
        &server,
        root,
        &targets,
        (clients, requests),
        (stalled, half_sent),
    )
    .await?;
    drop(server);

    // 2. The same attack on a server that may open 256 files.
    let (calm_256, attacked_256, evicted) = at_256_files(
        &bin,
        &db,
        root,
        &targets,
        (stalled / 4, half_sent),
        requests,
    )
    .await?;

    let runs = [&calm, &attacked, &again, &calm_256, &attacked_256];
    let wrong: usize = runs.iter().map(|l| l.wrong).sum();
    let failed: usize = runs.iter().map(|l| l.failed).sum();
    let ratio = attacked.p99_ms / calm.p99_ms;
    let growth = peak.saturating_sub(base);
    let left = after.saturating_sub(base);
    println!();
    println!(
        "hamt serve over sled; {clients} clients, {requests} requests each run, every byte compared; \
         attack: {stalled} stalled 13.9 MB CAR clients + {half_sent} half-sent requests"
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>7} {:>7}",
        "run", "req/s", "p50 ms", "p99 ms", "wrong", "failed"
    );
    #[allow(clippy::cast_precision_loss)]
    let row = |name: &str, l: &Load| {
        println!(
            "{name:<34} {:>9.0} {:>9.2} {:>9.2} {:>7} {:>7}",
            l.requests as f64 / l.seconds,
            l.p50_ms,
            l.p99_ms,
            l.wrong,
            l.failed
        );
    };
    row("unloaded", &calm);
    row("under attack", &attacked);
    row("under attack again", &again);
    row("ulimit -n 256, unloaded (8 clients)", &calm_256);
    row("ulimit -n 256, under attack", &attacked_256);
    println!(
        "p99 under attack / unloaded: {ratio:.2}x ({} ≤ 3x)",
        verdict(ratio <= 3.0)
    );
    println!(
        "server RSS: base {:.1} MiB, peak under attack {:.1} MiB (+{:.1} MiB, {} < 128 MiB), \
         3 s after the attackers left {:.1} MiB (+{:.1} MiB, {} ≤ 10% of the base)",
        mib(base),
        mib(peak),
        mib(growth),
        verdict(mib(growth) < 128.0),
        mib(after),
        mib(left),
        verdict(left * 10 <= base)
    );
    println!(
        "a second attack: peak {:.1} MiB, 3 s after it {:.1} MiB (+{:.1} MiB over the base)",
        mib(peak_again),
        mib(after_again),
        mib(after_again.saturating_sub(base))
    );
    println!(
        "connections open during the attack: {open_during}, after: {open_after}; \
         idle connections evicted at ulimit -n 256: {evicted}"
    );
    let ratio_256 = attacked_256.p99_ms / calm_256.p99_ms;
    println!("ulimit -n 256: p99 under attack / unloaded: {ratio_256:.2}x");
    println!(
        "{}",
        serde_json::json!({
            "unloaded_p99_ms": calm.p99_ms, "attacked_p99_ms": attacked.p99_ms, "p99_ratio": ratio,
            "rss_base_mib": mib(base), "rss_peak_mib": mib(peak), "rss_after_mib": mib(after),
            "rss_peak_again_mib": mib(peak_again), "rss_after_again_mib": mib(after_again),
            "wrong": wrong, "failed": failed,
            "ulimit256_p99_ratio": ratio_256, "evicted_at_ulimit256": evicted,
        })
    );
    if wrong > 0 {
        return Err(format!("{wrong} responses had wrong bytes").into());
    }
    if failed > 0 {
        return Err(format!("{failed} legitimate requests failed").into());
    }
    Ok(())
}
