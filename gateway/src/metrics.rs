//! Counters served at `/metrics` in the Prometheus text format.

use std::sync::atomic::{AtomicU64, Ordering};

/// Request and byte counters of a gateway.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    ok: AtomicU64,
    not_found: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    corrupt_blocks: AtomicU64,
    bytes_sent: AtomicU64,
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

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Blocks that failed verification against their CID.
    pub fn corrupt_blocks(&self) -> u64 {
        self.corrupt_blocks.load(Ordering::Relaxed)
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
             hamt_gateway_sent_bytes_total {}\n",
            get(&self.ok),
            get(&self.not_found),
            get(&self.client_errors),
            get(&self.server_errors),
            get(&self.corrupt_blocks),
            get(&self.bytes_sent),
        )
    }
}
