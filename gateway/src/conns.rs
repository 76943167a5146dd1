//! The open connections and whether each is serving a request, so that at the connection
//! cap an idle one (a client that sent nothing, half a request, or nothing since its last
//! response) makes room for a newcomer rather than the newcomer waiting behind it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;

/// One connection's state, shared by its task, its service and its socket.
#[derive(Debug)]
pub(crate) struct Conn {
    start: Instant,
    in_flight: AtomicUsize,
    write_pending: AtomicBool,
    /// Milliseconds from `start` to when the connection last became idle.
    idle_since: AtomicU64,
    evict: Notify,
}

impl Conn {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// No request is being served and nothing waits to be written.
    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && !self.write_pending.load(Ordering::Acquire)
    }

    /// Whether a write waits for the peer (set by the socket).
    pub(crate) fn set_write_pending(&self, pending: bool) {
        self.write_pending.store(pending, Ordering::Release);
    }

    /// A request has come in; it is in flight until the guard (held by the response
    /// body) drops.
    pub(crate) fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Completes when the connection is asked to make room while idle.
    pub(crate) async fn evicted(&self) {
        loop {
            self.evict.notified().await;
            if self.idle() {
                return;
            }
        }
    }
}

/// A request in flight on a connection.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_since.store(self.0.now(), Ordering::Release);
        }
    }
}

/// Every open connection.
#[derive(Debug)]
pub(crate) struct Registry {
    start: Instant,
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            next: AtomicU64::new(0),
            conns: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new connection, idle until its first request; unregistered when the guard drops.
    pub(crate) fn register(self: &Arc<Self>) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            start: self.start,
            in_flight: AtomicUsize::new(0),
            write_pending: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            evict: Notify::new(),
        });
        conn.idle_since.store(conn.now(), Ordering::Release);
        self.lock().insert(id, conn.clone());
        Registered {
            id,
            conn,
            registry: self.clone(),
        }
    }

    /// Asks the connection idle the longest to close; false when none is idle.
    pub(crate) fn evict_idlest(&self) -> bool {
        let conns = self.lock();
        let idlest = conns
            .values()
            .filter(|c| c.idle())
            .min_by_key(|c| c.idle_since.load(Ordering::Acquire));
        match idlest {
            Some(conn) => {
                conn.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A connection's place in the [`Registry`].
#[derive(Debug)]
pub(crate) struct Registered {
    id: u64,
    pub(crate) conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// A response body that keeps its request in flight until it is dropped: until hyper has
/// taken all of it, or the connection is gone.
pub(crate) struct Tracked {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl Tracked {
    pub(crate) fn new(inner: axum::body::Body, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
