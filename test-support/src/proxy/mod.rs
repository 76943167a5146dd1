//! [`Proxy`]: a TCP proxy on loopback, put in front of a service's port, that delays,
//! rate-limits and breaks the traffic between a client and the service, with settings that
//! can change while it runs.
//!
//! Shaping is set per [`Direction`]: a fixed delay (latency, without lowering throughput)
//! and a bandwidth cap (a token bucket, bytes per second). Faults are [`Rule`]s: a
//! [`Fault`] for the requests a rule selects (all, the first N, a fraction; optionally only
//! those of one method or with a path containing some text). For HTTP/1.1 services the proxy
//! follows the requests and responses on each connection, so a fault hits one exchange on a
//! kept-alive connection and body offsets count body bytes; for other protocols
//! ([`Protocol::Tcp`]) a rule selects connections and offsets count the service's bytes from
//! the start of the connection. Without rules every byte passes unchanged.
//!
//! The bandwidth cap is the link's, shared by all connections; each direction of a
//! connection holds up to twice its delay's worth of that bandwidth in flight (1 MiB at
//! least, 64 MiB at most), so a delay adds latency without lowering throughput.
//!
//! Every wait is bounded: connecting to the service (5 s), a connection idle in either
//! direction (2 min), a write the peer does not read (1 min), and a [`Fault::Stall`] (its
//! duration). Dropping the proxy closes its port and every connection through it.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use std::time::Duration;
//! use hamt_test_support::proxy::{Direction, Fault, Protocol, Proxy, Rule, Shaping};
//!
//! let proxy = Proxy::start("127.0.0.1:5001".parse().unwrap(), Protocol::Http).await?;
//! // Clients use proxy.url() instead of the service's URL.
//! proxy.shape(Direction::ToClient, Shaping::delay(Duration::from_millis(20)).bandwidth(1 << 20));
//! proxy.set_faults([Rule::new(Fault::Status(503)).first(2)]);
//! # Ok(()) }
//! ```

mod conn;
mod http;
mod queue;
mod shape;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;

/// What the proxy assumes about the traffic it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 (plain text, as the IPFS node and the S3 server speak on loopback): faults
    /// apply to single requests, body offsets count body bytes, and [`Fault::Status`]
    /// answers in place of the service. Bytes it cannot follow as HTTP pass on unchanged.
    Http,
    /// Any TCP protocol: rules select connections, offsets count the bytes the service sends
    /// from the start of the connection.
    Tcp,
}

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the service (requests).
    ToService,
    /// From the service to the client (responses).
    ToClient,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ToService => 0,
            Direction::ToClient => 1,
        }
    }
}

/// Delay and bandwidth of one direction; the default passes bytes on at once, at full
/// speed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shaping {
    /// How long every byte is held before it is passed on (latency; throughput is not
    /// lowered by it).
    pub delay: Duration,
    /// Most bytes per second passed on, by all connections together (one token bucket per
    /// direction, with 20 ms of burst, as a link has one capacity); `None` for no cap.
    pub bytes_per_second: Option<u64>,
}

impl Shaping {
    /// A fixed delay and no bandwidth cap.
    pub fn delay(delay: Duration) -> Self {
        Self {
            delay,
            bytes_per_second: None,
        }
    }

    /// This shaping with a bandwidth cap in bytes per second (at least 1).
    #[must_use]
    pub fn bandwidth(mut self, bytes_per_second: u64) -> Self {
        self.bytes_per_second = Some(bytes_per_second.max(1));
        self
    }
}

/// What goes wrong with a selected request (HTTP) or connection (TCP). Offsets count bytes
/// of the response body (HTTP) or of what the service sends (TCP); a fault whose offset lies
/// beyond the end does nothing to that response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP: answers with this status, a short text body and `Connection: close` instead of
    /// forwarding the request, which the service never sees. TCP: resets the connection at
    /// once.
    Status(u16),
    /// Holds the response back this long before its first byte (a service that stalls past
    /// the client's timeout), then passes it on if the client is still there.
    Stall(Duration),
    /// Resets the connection (TCP RST) after `after` bytes of the body.
    Drop {
        /// Bytes of the body passed on before the reset.
        after: u64,
    },
    /// Ends the body after `after` bytes, framed as if it were complete: HTTP rewrites
    /// `Content-Length` or ends the chunked encoding early (the connection stays usable);
    /// TCP closes the connection cleanly (FIN).
    Truncate {
        /// Bytes of the body passed on.
        after: u64,
    },
    /// Flips the lowest bit of the body byte at offset `at`.
    Flip {
        /// The offset of the byte changed.
        at: u64,
    },
}

/// Which requests a [`Rule`] hits, among those it matches.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Select {
    All,
    First(u64),
    /// Hits are spread evenly: request `i` (from 0) is hit when `floor((i+1)·f)` exceeds
    /// `floor(i·f)`, so runs are repeatable.
    Fraction(f64),
}

/// A fault and the requests (HTTP) or connections (TCP) it hits.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    fault: Fault,
    select: Select,
    method: Option<String>,
    path: Option<String>,
}

impl Rule {
    /// `fault` for every request (or connection).
    pub fn new(fault: Fault) -> Self {
        Self {
            fault,
            select: Select::All,
            method: None,
            path: None,
        }
    }

    /// Only the first `n` matching requests.
    #[must_use]
    pub fn first(mut self, n: u64) -> Self {
        self.select = Select::First(n);
        self
    }

    /// A fraction (0 to 1) of the matching requests, spread evenly and repeatably.
    #[must_use]
    pub fn fraction(mut self, fraction: f64) -> Self {
        self.select = Select::Fraction(fraction.clamp(0.0, 1.0));
        self
    }

    /// Only requests with this method (`GET`, `PUT`, …; HTTP only).
    #[must_use]
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Only requests whose path (with its query) contains `text` (HTTP only).
    #[must_use]
    pub fn path_contains(mut self, text: impl Into<String>) -> Self {
        self.path = Some(text.into());
        self
    }

    fn matches(&self, method: Option<&str>, path: Option<&str>) -> bool {
        let method_ok = match (&self.method, method) {
            (None, _) => true,
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
            (Some(_), None) => false,
        };
        let path_ok = match (&self.path, path) {
            (None, _) => true,
            (Some(want), Some(got)) => got.contains(want.as_str()),
            (Some(_), None) => false,
        };
        method_ok && path_ok
    }
}

/// Counters since the proxy started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Client connections accepted.
    pub connections: u64,
    /// HTTP requests seen (for [`Protocol::Tcp`], connections).
    pub requests: u64,
    /// Faults that took effect (a fault whose offset lies past a body's end does not count).
    pub faults: u64,
    /// Bytes passed on to the service.
    pub bytes_to_service: u64,
    /// Bytes passed on to clients.
    pub bytes_to_client: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    faults: AtomicU64,
    bytes: [AtomicU64; 2],
}

/// One HTTP request the proxy saw: [`Proxy::requests`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Seen {
    /// Its method.
    pub method: String,
    /// Its path, with the query.
    pub path: String,
    /// The fault chosen for it, if any (it may not have taken effect: an offset past the
    /// body's end).
    pub fault: Option<Fault>,
}

/// Requests remembered by [`Proxy::requests`]; older ones are forgotten.
const LOG_LIMIT: usize = 10_000;

#[derive(Debug, Default)]
struct Settings {
    shaping: [Shaping; 2],
    /// Each rule with the number of requests it has matched so far.
    rules: Vec<(Rule, u64)>,
    /// The latest requests, oldest first.
    log: std::collections::VecDeque<Seen>,
}

/// What every connection of one proxy shares: where to connect, the live settings, the
/// counters.
#[derive(Debug)]
pub(crate) struct Shared {
    upstream: SocketAddr,
    protocol: Protocol,
    settings: Mutex<Settings>,
    counters: Counters,
    /// The bandwidth cap's bucket of each direction, shared by every connection.
    buckets: [shape::Bucket; 2],
}

impl Shared {
    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        // Settings are plain values replaced whole: a panic elsewhere cannot leave them torn.
        self.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn shaping(&self, direction: Direction) -> Shaping {
        self.settings().shaping[direction.index()]
    }

    /// The fault for a new request (`method`, `path`) or, with `None`s, a new TCP
    /// connection: the first rule that matches and selects it. Counts the request.
    pub(crate) fn decide(&self, method: Option<&str>, path: Option<&str>) -> Option<Fault> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let mut settings = self.settings();
        let mut chosen = None;
        for (rule, seen) in &mut settings.rules {
            if !rule.matches(method, path) {
                continue;
            }
            let i = *seen;
            *seen += 1;
            let hit = match rule.select {
                Select::All => true,
                Select::First(n) => i < n,
                #[allow(clippy::cast_precision_loss)]
                Select::Fraction(f) => ((i + 1) as f64 * f).floor() > (i as f64 * f).floor(),
            };
            if hit {
                chosen = Some(rule.fault);
                break;
            }
        }
        if let (Some(method), Some(path)) = (method, path) {
            if settings.log.len() == LOG_LIMIT {
                settings.log.pop_front();
            }
            settings.log.push_back(Seen {
                method: method.to_owned(),
                path: path.to_owned(),
                fault: chosen,
            });
        }
        chosen
    }

    pub(crate) fn connection_accepted(&self) {
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn fault_applied(&self) {
        self.counters.faults.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn passed(&self, direction: Direction, bytes: usize) {
        self.counters.bytes[direction.index()].fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn bucket(&self, direction: Direction) -> &shape::Bucket {
        &self.buckets[direction.index()]
    }

    pub(crate) fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }
}

/// How the accept loop runs: a task on the caller's runtime, or a thread with a runtime of
/// its own.
#[derive(Debug)]
enum Running {
    Task(tokio::task::JoinHandle<()>),
    Thread {
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
}

/// A proxy on `127.0.0.1` in front of one service; see the [module docs](self). Stops, and
/// closes every connection through it, when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    running: Running,
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free loopback port, on the current tokio runtime.
    ///
    /// # Errors
    /// When no port can be bound.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn start(upstream: SocketAddr, protocol: Protocol) -> io::Result<Self> {
        let (listener, shared) = Self::bind(upstream, protocol).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(conn::accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            running: Running::Task(task),
        })
    }

    /// Starts a proxy in front of the service at `url` (`http://127.0.0.1:5001`, a path
    /// is ignored), as [`start`](Self::start) does.
    ///
    /// # Errors
    /// When `url` names no `HOST:PORT` that resolves, or no port can be bound.
    pub async fn in_front_of(url: &str, protocol: Protocol) -> io::Result<Self> {
        let upstream = resolve(url).await?;
        Self::start(upstream, protocol).await
    }

    /// Starts a proxy to `upstream` on a thread of its own with its own runtime, for callers
    /// without one (xtask, synchronous benchmarks). Dropping it stops the thread.
    ///
    /// # Errors
    /// When the thread or runtime cannot start or no port can be bound.
    pub fn start_on_thread(upstream: SocketAddr, protocol: Protocol) -> io::Result<Self> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("hamt-test-proxy".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match Self::bind(upstream, protocol).await {
                        Ok((listener, shared)) => {
                            let addr = listener.local_addr();
                            let serve = conn::accept_loop(listener, shared.clone());
                            let _ = ready_tx.send(addr.map(|a| (a, shared)));
                            tokio::select! {
                                () = serve => {}
                                _ = stop_rx => {}
                            }
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })?;
        let ready = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| io::Error::other("the proxy thread did not start"))?;
        let (addr, shared) = ready?;
        Ok(Self {
            addr,
            shared,
            running: Running::Thread {
                stop: Some(stop_tx),
                thread: Some(thread),
            },
        })
    }

    async fn bind(
        upstream: SocketAddr,
        protocol: Protocol,
    ) -> io::Result<(TcpListener, Arc<Shared>)> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let shared = Arc::new(Shared {
            upstream,
            protocol,
            settings: Mutex::new(Settings::default()),
            counters: Counters::default(),
            buckets: Default::default(),
        });
        Ok((listener, shared))
    }

    /// The proxy's address; clients connect here instead of to the service.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the proxy's address as a base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the delay and bandwidth of one direction; connections open now follow it from
    /// their next byte.
    pub fn shape(&self, direction: Direction, shaping: Shaping) {
        self.shared.settings().shaping[direction.index()] = shaping;
    }

    /// Replaces the fault rules (the first that matches and selects a request applies) and
    /// starts their counts afresh.
    pub fn set_faults(&self, rules: impl IntoIterator<Item = Rule>) {
        self.shared.settings().rules = rules.into_iter().map(|r| (r, 0)).collect();
    }

    /// Removes every fault rule: from now on bytes pass unchanged.
    pub fn clear_faults(&self) {
        self.set_faults([]);
    }

    /// The HTTP requests seen so far (the latest 10 000), oldest first, with the fault chosen
    /// for each.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.settings().log.iter().cloned().collect()
    }

    /// Counters since the proxy started.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            connections: get(&c.connections),
            requests: get(&c.requests),
            faults: get(&c.faults),
            bytes_to_service: get(&c.bytes[0]),
            bytes_to_client: get(&c.bytes[1]),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        match &mut self.running {
            Running::Task(task) => task.abort(),
            Running::Thread { stop, thread } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
        }
    }
}

/// The socket address of `http://HOST:PORT/…` (or a bare `HOST:PORT`).
async fn resolve(url: &str) -> io::Result<SocketAddr> {
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("no HOST:PORT in {url:?}"),
        )
    };
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().ok_or_else(invalid)?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if !authority.contains(':') {
        return Err(invalid());
    }
    tokio::net::lookup_host(authority)
        .await?
        .next()
        .ok_or_else(invalid)
}
