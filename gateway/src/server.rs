//! The accept loop: HTTP/1.1 and HTTP/2 (prior knowledge) over TCP, with limits on what a
//! client can hold without doing its part.
//!
//! - At most `max_connections` connections are open; beyond that the loop stops accepting
//!   and new clients wait in the kernel's backlog until one closes.
//! - A connection must complete its request headers within `header_timeout`: from the
//!   accept for the first request (a client that sends nothing, or half a request), and
//!   while idle between keep-alive requests (hyper's header read timeout).
//! - A response the client takes no bytes of for `send_timeout` is cut, with its
//!   connection ([`SendDeadline`]).
//!
//! On shutdown the loop stops accepting, asks every connection to finish the request it is
//! serving, and returns when all have closed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tower::ServiceExt as _;

use crate::Error;
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
    let (stop, stopping) = watch::channel(false);
    let builder = Arc::new(builder(limits));
    tokio::pin!(shutdown);
    let mut full_logged = false;
    loop {
        if slots.available_permits() == 0 && !full_logged {
            full_logged = true;
            state.metrics.connection_limit_reached();
            tracing::warn!(
                max,
                "connection limit reached: new clients wait until one closes"
            );
        }
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        if slots.available_permits() > 0 {
            full_logged = false;
        }
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
        let (router, state, builder, stopping) = (
            router.clone(),
            state.clone(),
            builder.clone(),
            stopping.clone(),
        );
        tokio::spawn(async move {
            let _slot = slot;
            connection(stream, router, &state, &builder, limits, stopping).await;
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a slot until it closes: having them all back means drained.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    Ok(())
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
        // What hyper queues of a response beyond the block it is writing: a client that
        // stops reading holds this much, not more.
        .max_buf_size(64 << 10);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

async fn connection(
    stream: TcpStream,
    router: Router,
    state: &Arc<State>,
    builder: &auto::Builder<TokioExecutor>,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
) {
    let _open = state.metrics.connection_opened();
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(SendDeadline::new(
        stream,
        limits.send_timeout,
        state.clone(),
    ));
    let first = Arc::new(Notify::new());
    let service = {
        let first = first.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            first.notify_one();
            router.clone().oneshot(req.map(axum::body::Body::new))
        })
    };
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    // Until the first request is in: hyper's own timeout starts only once it knows the
    // protocol, and a client that sends nothing never lets it know.
    tokio::select! {
        result = conn.as_mut() => return finished(state, result),
        () = first.notified() => {}
        () = tokio::time::sleep(limits.header_timeout) => {
            state.metrics.header_timeout();
            tracing::debug!("no request within the header timeout: closing");
            return;
        }
        _ = stopping.wait_for(|s| *s) => return,
    }
    tokio::select! {
        result = conn.as_mut() => return finished(state, result),
        _ = stopping.wait_for(|s| *s) => {}
    }
    conn.as_mut().graceful_shutdown();
    finished(state, conn.await);
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

/// A socket whose writes fail once the peer has taken no bytes for `timeout`: the only way
/// to free what a client that stopped reading holds, since neither hyper nor the kernel
/// gives up on it.
pub(crate) struct SendDeadline<T> {
    inner: T,
    timeout: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    armed: bool,
    state: Arc<State>,
}

impl<T> SendDeadline<T> {
    fn new(inner: T, timeout: Duration, state: Arc<State>) -> Self {
        Self {
            inner,
            timeout,
            timer: Box::pin(tokio::time::sleep(timeout)),
            armed: false,
            state,
        }
    }

    /// Called when a write could not proceed: `Ready(Err)` once it has waited too long.
    fn poll_stalled<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        if !self.armed {
            self.armed = true;
            let deadline = tokio::time::Instant::now() + self.timeout;
            self.timer.as_mut().reset(deadline);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.state.metrics.send_timeout();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the client took no bytes for {:?}", self.timeout),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<R>(
        &mut self,
        result: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match result {
            Poll::Ready(r) => {
                self.armed = false;
                Poll::Ready(r)
            }
            Poll::Pending => self.poll_stalled(cx),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(r, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(r, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progress(r, cx)
    }
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
