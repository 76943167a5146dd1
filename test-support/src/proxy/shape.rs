//! The writing end of one direction of a connection: it passes on what the fault logic
//! decided, in order, held back by the direction's delay and bandwidth cap as they are set
//! at that moment. The cap is the link's: every connection of a proxy draws on one bucket
//! per direction.

use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::time::Instant;

use super::queue::Receiver;
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

impl Out {
    /// The bytes it passes on.
    pub(crate) fn len(&self) -> usize {
        match self {
            Out::Data(bytes, _) => bytes.len(),
            Out::Hold(_) | Out::Close | Out::Reset => 0,
        }
    }
}

/// How the writing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Everything was passed on (then the write side was shut down).
    Done,
    /// The connection is to be reset.
    Reset,
}

/// The token bucket of one direction of a proxy, shared by its connections, kept as the
/// time at which what was sent so far has been paid for. Each write reserves its turn, so
/// connections take turns in the order they ask.
#[derive(Debug)]
pub(crate) struct Bucket {
    paid_until: Mutex<Instant>,
}

impl Default for Bucket {
    fn default() -> Self {
        Self {
            paid_until: Mutex::new(Instant::now()),
        }
    }
}

impl Bucket {
    async fn take(&self, bytes: usize, rate: Option<u64>) {
        let now = Instant::now();
        let wake = {
            // A plain time replaced whole: a panic elsewhere cannot leave it torn.
            let mut paid_until = self
                .paid_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(rate) = rate else {
                *paid_until = now;
                return;
            };
            // Credit for idle time is capped at one burst.
            *paid_until = (*paid_until).max(now.checked_sub(BURST).unwrap_or(now));
            #[allow(clippy::cast_precision_loss)]
            let cost = Duration::from_secs_f64(bytes as f64 / rate as f64);
            *paid_until += cost;
            *paid_until
        };
        if wake > now {
            tokio::time::sleep_until(wake).await;
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
    mut queue: Receiver,
    shared: &Shared,
    direction: Direction,
) -> io::Result<Ending> {
    let bucket = shared.bucket(direction);
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
