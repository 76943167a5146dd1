//! The queue between the reading and the writing end of one direction of a connection,
//! bounded in bytes: it holds a delay's worth of the direction's bandwidth (and a margin),
//! so a delay lowers latency and not throughput, whatever the size of the pieces read, and
//! memory stays bounded however fast the sender and however slow the receiver.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use super::shape::Out;
use super::{Direction, Shared};

/// Bytes a queue always holds: more than a few full reads, for an undelayed direction.
const MIN_BYTES: usize = 1 << 20;
/// Bytes a queue never exceeds (a delayed direction without a bandwidth cap holds this).
const MAX_BYTES: usize = 64 << 20;
/// What every entry costs beyond its bytes, so entries without bytes are bounded too.
const ENTRY_COST: usize = 64;

/// How many bytes a queue holds under `delay` and `bytes_per_second`: twice a delay's
/// worth, plus [`MIN_BYTES`], at most [`MAX_BYTES`].
fn budget(delay: Duration, bytes_per_second: Option<u64>) -> usize {
    if delay.is_zero() {
        return MIN_BYTES;
    }
    let Some(rate) = bytes_per_second else {
        return MAX_BYTES;
    };
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let in_flight = (delay.as_secs_f64() * rate as f64 * 2.0).min(MAX_BYTES as f64) as usize;
    in_flight.saturating_add(MIN_BYTES).min(MAX_BYTES)
}

/// What both ends share: the bytes queued or still being written.
#[derive(Debug, Default)]
struct State {
    queued: AtomicUsize,
    space: Notify,
}

/// The reading end's side (one per queue).
#[derive(Debug)]
pub(crate) struct Sender {
    tx: mpsc::UnboundedSender<Out>,
    state: Arc<State>,
    shared: Arc<Shared>,
    direction: Direction,
}

/// The writing end's side.
#[derive(Debug)]
pub(crate) struct Receiver {
    rx: mpsc::UnboundedReceiver<Out>,
    state: Arc<State>,
    /// The cost of the entry last handed out, released when the next is asked for (the
    /// writer holds it until then, through its delay).
    held: usize,
}

/// The queue of `direction`, sized by its shaping at each send.
pub(crate) fn channel(shared: Arc<Shared>, direction: Direction) -> (Sender, Receiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(State::default());
    (
        Sender {
            tx,
            state: state.clone(),
            shared,
            direction,
        },
        Receiver { rx, state, held: 0 },
    )
}

/// The receiver is gone.
#[derive(Debug)]
pub(crate) struct Closed;

impl Sender {
    /// Queues `out`, first waiting while the queue holds its budget (an entry always goes
    /// into an empty queue, however large).
    pub(crate) async fn send(&self, out: Out) -> Result<(), Closed> {
        let cost = out.len() + ENTRY_COST;
        loop {
            let space = self.state.space.notified();
            tokio::pin!(space);
            // Registered before looking, so a release in between is not missed.
            space.as_mut().enable();
            if self.tx.is_closed() {
                return Err(Closed);
            }
            let shaping = self.shared.shaping(self.direction);
            let limit = budget(shaping.delay, shaping.bytes_per_second);
            // The only sender: nothing else adds between the load and the add.
            let queued = self.state.queued.load(Ordering::Acquire);
            if queued == 0 || queued.saturating_add(cost) <= limit {
                self.state.queued.fetch_add(cost, Ordering::AcqRel);
                break;
            }
            space.await;
        }
        self.tx.send(out).map_err(|_| Closed)
    }
}

impl Receiver {
    /// The next entry, releasing the one before; `None` once the sender is gone and all is
    /// handed out.
    pub(crate) async fn recv(&mut self) -> Option<Out> {
        self.release();
        let out = self.rx.recv().await?;
        self.held = out.len() + ENTRY_COST;
        Some(out)
    }

    fn release(&mut self) {
        if self.held > 0 {
            self.state.queued.fetch_sub(self.held, Ordering::AcqRel);
            self.held = 0;
            self.state.space.notify_one();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.rx.close();
        // A sender waiting for space sees the queue closed.
        self.state.space.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_holds_a_delays_worth_and_stays_bounded() {
        let ms = Duration::from_millis;
        assert_eq!(budget(Duration::ZERO, Some(1)), MIN_BYTES);
        assert_eq!(budget(Duration::ZERO, None), MIN_BYTES);
        // 40 ms at 25 MB/s is 1 MB in flight: twice that, and the margin.
        assert_eq!(budget(ms(40), Some(25_000_000)), 2_000_000 + MIN_BYTES);
        assert_eq!(budget(ms(40), None), MAX_BYTES);
        assert_eq!(budget(Duration::from_hours(1), Some(u64::MAX)), MAX_BYTES);
    }
}
