//! The accept loop: HTTP/1.1 and HTTP/2 (prior knowledge) over TCP, with limits on what a
//! client can hold without doing its part.
//!
//! - At most `max_connections` connections are open. A newcomer beyond them closes the
//!   connection idle the longest (one serving no request: a client that sent nothing, half
//!   a request, or nothing since its last response; [`crate::conns`]); when every connection
//!   is busy, newcomers wait in the kernel's backlog until one closes.
//! - A connection must complete its request headers within `header_timeout`: from the
//!   accept for the first request (a client that sends nothing, or half a request), and
//!   while idle between keep-alive requests (hyper's header read timeout).
//! - A response the client takes no bytes of for `send_timeout` is cut, with its
//!   connection ([`SendDeadline`](crate::deadline::SendDeadline)).
//!
//! On shutdown the loop stops accepting, asks every connection to finish the request it is
//! serving, and returns when all have closed.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt as _;

use crate::Error;
use crate::conns::{Registered, Registry, Tracked};
use crate::deadline::SendDeadline;
use crate::handler::State;

/// The limits of [`run`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_connections: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) send_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    state: Arc<State>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let registry = Registry::new();
    let (stop, stopping) = watch::channel(false);
    let builder = Arc::new(builder(limits));
    tokio::spawn(crate::trim::after_bursts(state.clone(), stopping.clone()));
    tokio::pin!(shutdown);
    'accept: loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                accept_failed(&e).await;
                continue;
            }
        };
        let slot = if let Ok(slot) = slots.clone().try_acquire_owned() {
            slot
        } else {
            let waited = tokio::select! {
                slot = make_room(&slots, &registry, &state, max) => slot,
                () = &mut shutdown => break 'accept,
            };
            match waited {
                Some(slot) => slot,
                None => break,
            }
        };
        let entry = registry.register();
        let (router, state, builder, stopping) = (
            router.clone(),
            state.clone(),
            builder.clone(),
            stopping.clone(),
        );
        tokio::spawn(async move {
            let _slot = slot;
            connection(stream, entry, router, &state, &builder, limits, stopping).await;
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a slot until it closes: having them all back means drained.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    Ok(())
}

/// At the cap: asks the connection idle the longest to close and waits for its slot; with
/// none idle, waits for any connection to close. `None` when the slots are gone.
async fn make_room(
    slots: &Arc<Semaphore>,
    registry: &Registry,
    state: &State,
    max: usize,
) -> Option<OwnedSemaphorePermit> {
    let mut logged = false;
    loop {
        let evicted = registry.evict_idlest();
        if evicted {
            state.metrics.connection_evicted();
        } else if !logged {
            logged = true;
            state.metrics.connection_limit_reached();
            tracing::warn!(
                max,
                "connection limit reached with every connection busy: new clients wait"
            );
        }
        // An evicted connection closes at once; a busy one may turn idle: look again soon.
        let wait = Duration::from_millis(if evicted { 100 } else { 250 });
        tokio::select! {
            slot = slots.clone().acquire_owned() => return slot.ok(),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Running out of file descriptors (or memory for sockets) is waited out; the other accept
/// errors concern one client that is already gone.
async fn accept_failed(e: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    ) {
        tracing::debug!(error = %e, "accept failed");
    } else {
        tracing::warn!(error = %e, "cannot accept (out of file descriptors?); retrying");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn builder(limits: Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // What hyper queues of a response beyond the block it is writing (a client that
        // stops reading holds this much, not more), and the longest request head.
        .max_buf_size(16 << 10);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

async fn connection(
    stream: TcpStream,
    entry: Registered,
    router: Router,
    state: &Arc<State>,
    builder: &auto::Builder<TokioExecutor>,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
) {
    let _open = state.metrics.connection_opened();
    let _ = stream.set_nodelay(true);
    let conn = entry.conn.clone();
    let io = TokioIo::new(SendDeadline::new(
        stream,
        limits.send_timeout,
        conn.clone(),
        state.clone(),
    ));
    let first = Arc::new(Notify::new());
    let service = {
        let (first, conn) = (first.clone(), conn.clone());
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            first.notify_one();
            let in_flight = conn.request_started();
            let response = router.clone().oneshot(req.map(axum::body::Body::new));
            async move {
                let response = response.await?;
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| Tracked::new(body, in_flight)),
                )
            }
        })
    };
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    // Until the first request is in: hyper's own timeout starts only once it knows the
    // protocol, and a client that sends nothing never lets it know.
    tokio::select! {
        result = served.as_mut() => return finished(state, result),
        () = first.notified() => {}
        () = tokio::time::sleep(limits.header_timeout) => {
            state.metrics.header_timeout();
            tracing::debug!("no request within the header timeout: closing");
            return;
        }
        () = conn.evicted() => return,
        _ = stopping.wait_for(|s| *s) => return,
    }
    tokio::select! {
        result = served.as_mut() => return finished(state, result),
        () = conn.evicted() => return,
        _ = stopping.wait_for(|s| *s) => {}
    }
    served.as_mut().graceful_shutdown();
    finished(state, served.await);
}

fn finished(state: &State, result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    let Err(e) = result else { return };
    if e.downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout)
    {
        state.metrics.header_timeout();
    }
    tracing::debug!(error = %e, "connection ended with an error");
}

/// The default connection cap: 1024, or three quarters of the open-file limit when that is
/// lower, so that the store and the process keep descriptors of their own.
pub(crate) fn default_max_connections() -> usize {
    const DEFAULT: usize = 1024;
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        match limit.and_then(|l| usize::try_from(l).ok()) {
            Some(l) => DEFAULT.min(l / 4 * 3).max(1),
            None => DEFAULT,
        }
    }
    #[cfg(not(unix))]
    DEFAULT
}
