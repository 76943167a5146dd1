//! Counters served at `/metrics` in the Prometheus text format.

use std::sync::atomic::{AtomicU64, Ordering};

/// Request, byte and connection counters of a gateway.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    ok: AtomicU64,
    not_found: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    corrupt_blocks: AtomicU64,
    bytes_sent: AtomicU64,
    open_connections: AtomicU64,
    peak_connections: AtomicU64,
    header_timeouts: AtomicU64,
    send_timeouts: AtomicU64,
    connection_limit_reached: AtomicU64,
    connections_evicted: AtomicU64,
    car_streams_cut: AtomicU64,
    heap_trims: AtomicU64,
}

/// Counts a connection as open until dropped.
#[derive(Debug)]
pub(crate) struct OpenConnection<'a>(&'a Metrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub(crate) fn record(&self, status: u16, bytes: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        let counter = match status {
            200..=399 => &self.ok,
            404 => &self.not_found,
            400..=499 => &self.client_errors,
            _ => &self.server_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn corrupt(&self) {
        self.corrupt_blocks.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_opened(&self) -> OpenConnection<'_> {
        let open = self.open_connections.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_connections.fetch_max(open, Ordering::Relaxed);
        OpenConnection(self)
    }

    /// The most connections open at once since [`Self::reset_peak_connections`].
    pub(crate) fn peak_connections(&self) -> u64 {
        self.peak_connections.load(Ordering::Relaxed)
    }

    /// Starts the peak over from the connections open now.
    pub(crate) fn reset_peak_connections(&self) {
        self.peak_connections
            .store(self.open_connections(), Ordering::Relaxed);
    }

    pub(crate) fn header_timeout(&self) {
        self.header_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn send_timeout(&self) {
        self.send_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_limit_reached(&self) {
        self.connection_limit_reached
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_evicted(&self) {
        self.connections_evicted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn heap_trimmed(&self) {
        self.heap_trims.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn car_cut(&self) {
        self.car_streams_cut.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Blocks that failed verification against their CID.
    pub fn corrupt_blocks(&self) -> u64 {
        self.corrupt_blocks.load(Ordering::Relaxed)
    }

    /// Connections open now (served by [`Gateway::serve`](crate::Gateway::serve)).
    pub fn open_connections(&self) -> u64 {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// Connections closed because their request headers did not arrive in time.
    pub fn header_timeouts(&self) -> u64 {
        self.header_timeouts.load(Ordering::Relaxed)
    }

    /// Connections closed because the client took no bytes of a response in time.
    pub fn send_timeouts(&self) -> u64 {
        self.send_timeouts.load(Ordering::Relaxed)
    }

    /// Idle connections closed to make room for a new one at the connection cap.
    pub fn connections_evicted(&self) -> u64 {
        self.connections_evicted.load(Ordering::Relaxed)
    }

    /// CAR streams cut short because a block was missing or corrupt.
    pub fn car_streams_cut(&self) -> u64 {
        self.car_streams_cut.load(Ordering::Relaxed)
    }

    /// Times the freed heap was given back to the system after a burst of connections
    /// (glibc only; always 0 elsewhere).
    pub fn heap_trims(&self) -> u64 {
        self.heap_trims.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "# TYPE hamt_gateway_requests_total counter\n\
             hamt_gateway_requests_total{{class=\"ok\"}} {}\n\
             hamt_gateway_requests_total{{class=\"not_found\"}} {}\n\
             hamt_gateway_requests_total{{class=\"client_error\"}} {}\n\
             hamt_gateway_requests_total{{class=\"server_error\"}} {}\n\
             # TYPE hamt_gateway_corrupt_blocks_total counter\n\
             hamt_gateway_corrupt_blocks_total {}\n\
             # TYPE hamt_gateway_sent_bytes_total counter\n\
             hamt_gateway_sent_bytes_total {}\n\
             # TYPE hamt_gateway_open_connections gauge\n\
             hamt_gateway_open_connections {}\n\
             # TYPE hamt_gateway_closed_connections_total counter\n\
             hamt_gateway_closed_connections_total{{reason=\"header_timeout\"}} {}\n\
             hamt_gateway_closed_connections_total{{reason=\"send_timeout\"}} {}\n\
             hamt_gateway_closed_connections_total{{reason=\"evicted_idle\"}} {}\n\
             # TYPE hamt_gateway_connection_limit_reached_total counter\n\
             hamt_gateway_connection_limit_reached_total {}\n\
             # TYPE hamt_gateway_car_streams_cut_total counter\n\
             hamt_gateway_car_streams_cut_total {}\n\
             # TYPE hamt_gateway_heap_trims_total counter\n\
             hamt_gateway_heap_trims_total {}\n",
            get(&self.ok),
            get(&self.not_found),
            get(&self.client_errors),
            get(&self.server_errors),
            get(&self.corrupt_blocks),
            get(&self.bytes_sent),
            get(&self.open_connections),
            get(&self.header_timeouts),
            get(&self.send_timeouts),
            get(&self.connections_evicted),
            get(&self.connection_limit_reached),
            get(&self.car_streams_cut),
            get(&self.heap_trims),
        )
    }
}
