//! The writing end of one direction of a connection: it passes on what the fault logic
//! decided, in order, held back by the direction's delay and bandwidth cap as they are set
//! at that moment.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Direction, Shared};

/// Longest wait for a peer to take bytes written to it.
const WRITE_TIMEOUT: Duration = Duration::from_mins(1);
/// A bandwidth cap lets this much of a second's worth through at once beyond its rate.
const BURSTS_PER_SECOND: u64 = 50;
const BURST: Duration = Duration::from_millis(1000 / BURSTS_PER_SECOND);
/// Bytes written at once without a cap.
const MAX_WRITE: usize = 64 * 1024;

/// One step of the output of a direction.
#[derive(Debug)]
pub(crate) enum Out {
    /// Bytes to pass on, and when they were read (the delay counts from then).
    Data(Bytes, Instant),
    /// Nothing passes for this long.
    Hold(Duration),
    /// Close the connection cleanly after what came before.
    Close,
    /// Reset the connection after what came before.
    Reset,
}

/// How the writing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Everything was passed on (then the write side was shut down).
    Done,
    /// The connection is to be reset.
    Reset,
}

/// A token bucket kept as the time at which what was sent so far has been paid for.
#[derive(Debug)]
struct Bucket {
    paid_until: Instant,
}

impl Bucket {
    async fn take(&mut self, bytes: usize, rate: Option<u64>) {
        let now = Instant::now();
        let Some(rate) = rate else {
            self.paid_until = now;
            return;
        };
        // Credit for idle time is capped at one burst.
        self.paid_until = self.paid_until.max(now.checked_sub(BURST).unwrap_or(now));
        #[allow(clippy::cast_precision_loss)]
        let cost = Duration::from_secs_f64(bytes as f64 / rate as f64);
        self.paid_until += cost;
        if self.paid_until > now {
            tokio::time::sleep_until(self.paid_until).await;
        }
    }
}

/// How much to write at once under `rate`: about a burst's worth, so a change of the cap
/// takes effect soon and the bucket never lends much.
fn slice_len(rate: Option<u64>) -> usize {
    match rate {
        None => MAX_WRITE,
        Some(rate) => {
            let per_burst = rate / BURSTS_PER_SECOND;
            usize::try_from(per_burst)
                .unwrap_or(MAX_WRITE)
                .clamp(1, MAX_WRITE)
        }
    }
}

/// Passes on everything `queue` holds to `to`, as shaped for `direction`, until the queue
/// closes (then shuts `to` down) or a [`Out::Close`] or [`Out::Reset`] comes.
pub(crate) async fn write_out<W: AsyncWrite + Unpin>(
    to: &mut W,
    mut queue: mpsc::Receiver<Out>,
    shared: &Shared,
    direction: Direction,
) -> io::Result<Ending> {
    let mut bucket = Bucket {
        paid_until: Instant::now(),
    };
    while let Some(out) = queue.recv().await {
        match out {
            Out::Data(mut bytes, read_at) => {
                let delay = shared.shaping(direction).delay;
                if !delay.is_zero() {
                    tokio::time::sleep_until(read_at + delay).await;
                }
                while !bytes.is_empty() {
                    let rate = shared.shaping(direction).bytes_per_second;
                    let part = bytes.split_to(slice_len(rate).min(bytes.len()));
                    bucket.take(part.len(), rate).await;
                    tokio::time::timeout(WRITE_TIMEOUT, to.write_all(&part))
                        .await
                        .map_err(|_| {
                            io::Error::new(io::ErrorKind::TimedOut, "peer not reading")
                        })??;
                    shared.passed(direction, part.len());
                }
            }
            Out::Hold(hold) => tokio::time::sleep(hold).await,
            Out::Close => {
                let _ = to.shutdown().await;
                return Ok(Ending::Done);
            }
            Out::Reset => return Ok(Ending::Reset),
        }
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, to.shutdown()).await;
    Ok(Ending::Done)
}
