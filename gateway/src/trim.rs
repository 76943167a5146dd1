//! Giving the heap back after a burst of connections.
//!
//! glibc keeps what a burst of connections freed in its per-thread arenas: a gateway that
//! held 400 connections (their buffers, their tasks) stayed about 25 MiB larger after they
//! closed. Once a second, when the open connections have fallen to half of their peak since
//! the last trim, and that peak was a burst, `malloc_trim` returns the free pages to the
//! system. Only memory that is already free is touched; elsewhere than glibc this is a no-op.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::handler::State;

/// The fewest connections at once that count as a burst worth trimming after.
const BURST: u64 = 16;

/// Trims after bursts until `stopping` turns true.
pub(crate) async fn after_bursts(state: Arc<State>, mut stopping: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        let open = state.metrics.open_connections();
        let peak = state.metrics.peak_connections();
        if peak >= BURST && open <= peak / 2 {
            state.metrics.reset_peak_connections();
            if matches!(
                tokio::task::spawn_blocking(release_free_memory).await,
                Ok(true)
            ) {
                state.metrics.heap_trimmed();
            }
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_free_memory() -> bool {
    // SAFETY: malloc_trim takes no pointers and only releases pages the allocator holds free;
    // glibc makes it safe to call from any thread at any time.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(
        released = released != 0,
        "trimmed the heap after a burst of connections"
    );
    true
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() -> bool {
    false
}
