#![doc = include_str!("../README.md")]

mod car;
mod conns;
mod deadline;
mod handler;
mod links;
mod metrics;
mod range;
mod request;
mod resolve;
mod server;
mod trim;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use hamt::BlockStore;
use tokio::net::TcpListener;

pub use crate::metrics::Metrics;

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("gateway server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// Options of a [`Gateway`].
#[derive(Debug, Clone)]
pub struct GatewayBuilder {
    store: Arc<dyn BlockStore>,
    token: Option<String>,
    concurrency: usize,
    timeout: Duration,
    max_file_bytes: u64,
    max_connections: usize,
    header_timeout: Duration,
    send_timeout: Duration,
}

impl GatewayBuilder {
    /// A gateway over `store` with no token, 256 requests at a time, a 60 s timeout, at
    /// most 1024 connections (fewer when the open-file limit is low: three quarters of it),
    /// 30 s for a client to send its request headers and 30 s for it to take response bytes.
    pub fn new(store: Arc<dyn BlockStore>) -> Self {
        Self {
            store,
            token: None,
            concurrency: 256,
            timeout: Duration::from_mins(1),
            max_file_bytes: 1 << 30,
            max_connections: server::default_max_connections(),
            header_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
        }
    }

    /// Requires `Authorization: Bearer TOKEN` on every request.
    #[must_use]
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Most requests handled at once; more wait their turn.
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Longest time a request may take to produce its response headers (504 after).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest UnixFS file reassembled for a plain `GET` (1 GiB by default).
    #[must_use]
    pub fn max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = bytes;
        self
    }

    /// Most connections open at once (at least 1); beyond them new clients wait in the
    /// listen backlog until one closes. Keep it below the open-file limit.
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Longest time a client may take to send a request's headers, from connecting or
    /// from the end of its previous response; the connection is closed after.
    #[must_use]
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Longest time a response may wait for the client to take more bytes; the connection
    /// is cut after (a client that stops reading a CAR would otherwise hold it forever).
    #[must_use]
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Builds the gateway.
    pub fn build(self) -> Gateway {
        Gateway {
            limits: server::Limits {
                max_connections: self.max_connections,
                header_timeout: self.header_timeout,
                send_timeout: self.send_timeout,
            },
            state: Arc::new(handler::State {
                store: self.store,
                token: self.token,
                timeout: self.timeout,
                max_file_bytes: self.max_file_bytes,
                metrics: Metrics::default(),
                permits: Arc::new(tokio::sync::Semaphore::new(self.concurrency)),
                sharded: resolve::ShardedRoots::default(),
            }),
        }
    }
}

/// A read-only IPFS trustless gateway over a block store; see the crate docs.
#[derive(Debug, Clone)]
pub struct Gateway {
    state: Arc<handler::State>,
    limits: server::Limits,
}

impl Gateway {
    /// A gateway over `store` with default options.
    pub fn new(store: Arc<dyn BlockStore>) -> Self {
        GatewayBuilder::new(store).build()
    }

    /// The counters behind `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// The HTTP routes, to serve or to mount in a larger application. Mounted elsewhere, the
    /// connection limits of [`GatewayBuilder`] are the host server's to enforce.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/ipfs/{*path}", get(handler::ipfs).head(handler::ipfs))
            .route("/metrics", get(handler::metrics))
            .fallback(handler::not_found)
            .with_state(self.state.clone())
    }

    /// Binds `addr` and serves until `shutdown` completes, then finishes the requests in
    /// flight (a stalled client is cut after the send timeout).
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be bound; [`Error::Serve`] on I/O failure.
    pub async fn serve(
        &self,
        addr: &str,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        self.serve_on(listener, shutdown).await
    }

    /// Serves on a bound listener until `shutdown` completes.
    ///
    /// # Errors
    /// [`Error::Serve`] on I/O failure.
    pub async fn serve_on(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "gateway listening");
        }
        server::run(
            listener,
            self.router(),
            self.state.clone(),
            self.limits,
            shutdown,
        )
        .await
    }
}

/// A gateway serving in the background (see [`Gateway::spawn`]).
#[derive(Debug)]
pub struct LocalServer {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl LocalServer {
    /// The base URL, `http://ADDR:PORT`, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops accepting, finishes the requests in flight and waits for the server to end.
    ///
    /// # Errors
    /// [`Error::Serve`] when the server failed.
    pub async fn shutdown(self) -> Result<(), Error> {
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|e| Error::Serve(std::io::Error::other(e)))?
    }
}

impl Gateway {
    /// Binds `addr` (`127.0.0.1:0` for any free port) and serves on a background task until
    /// [`LocalServer::shutdown`]: for tests, benchmarks and embedding in a larger program.
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be bound.
    pub async fn spawn(&self, addr: &str) -> Result<LocalServer, Error> {
        let bind = |source| Error::Bind {
            addr: addr.to_owned(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind)?;
        let url = format!("http://{}", listener.local_addr().map_err(bind)?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let gateway = self.clone();
        let task = tokio::spawn(async move {
            gateway
                .serve_on(listener, async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(LocalServer { url, stop, task })
    }
}

/// Completes on SIGTERM or Ctrl-C: the usual `shutdown` argument of [`Gateway::serve`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
