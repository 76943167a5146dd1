//! CAR responses as streams with backpressure: the blocks from the root down a path, then
//! the block or the DAG at its end, depth first, each fetched only when the client has room
//! for it.
//!
//! A producer task walks the DAG and hands each section to the response body through a
//! channel of one: it reserves the slot *before* fetching the next block, so a client that
//! stops reading costs the block the connection is writing, the one waiting in the channel
//! and the walk's stack of CIDs, whatever the size of the CAR. A walk that fails (a missing
//! or corrupt block) drops the channel without its end marker, the body then fails, and the
//! server cuts the connection without the final chunk: a client never takes a truncated CAR
//! for a whole one.

use std::collections::HashSet;
use std::hash::{BuildHasher as _, RandomState};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use bytes::Bytes;
use hamt::codec::varint;
use hamt::{Cid, Error as HamtError, inline_data, verify};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::handler::State;
use crate::links::links;

/// What one CAR response holds.
#[derive(Debug)]
pub(crate) struct CarJob {
    /// The root named in the CAR header: the CID of the request.
    pub(crate) root: Cid,
    /// The verified blocks from the root down to the end of the path, the end excluded
    /// (empty without a path).
    pub(crate) path: Vec<(Cid, Bytes)>,
    /// The CID at the end of the path.
    pub(crate) terminal: Cid,
    /// Its verified block (its own bytes for an identity CID).
    pub(crate) terminal_block: Bytes,
    /// The whole DAG below the terminal (`dag-scope=all`), or its block alone.
    pub(crate) all: bool,
    /// `dups=y`: every block each time the walk meets it.
    pub(crate) dups: bool,
}

/// What the producer hands the body.
enum Piece {
    /// Bytes to send as they are (the header).
    Data(Bytes),
    /// A section: its length and CID, then the block.
    Block(Bytes, Bytes),
    /// The archive is complete.
    End,
}

/// Why the producer stopped early.
enum Stop {
    /// The response was dropped: the client left or was cut off.
    ClientGone,
    /// The walk failed; the reason is logged, the client sees the stream cut.
    Failed(String),
}

/// The body of a CAR response; the walk runs on its own task, holding `permit` (a slot of
/// the gateway's concurrency) until it ends.
pub(crate) fn body(state: Arc<State>, job: CarJob, permit: Option<OwnedSemaphorePermit>) -> Body {
    let (tx, rx) = mpsc::channel::<Piece>(1);
    tokio::spawn(async move {
        let _permit = permit;
        let root = job.root;
        match produce(&state, job, &tx).await {
            Ok(()) => {
                let _ = tx.send(Piece::End).await;
            }
            Err(Stop::ClientGone) => {
                tracing::debug!(%root, "CAR stream dropped by the client");
            }
            Err(Stop::Failed(reason)) => {
                state.metrics.car_cut();
                tracing::error!(%root, %reason, "CAR stream failed midway; cutting the connection");
            }
        }
    });
    Body::from_stream(futures::stream::unfold(
        (Some(rx), None::<Bytes>),
        |(rx, pending)| async move {
            let mut rx = rx?;
            if let Some(data) = pending {
                return Some((Ok(data), (Some(rx), None)));
            }
            match rx.recv().await {
                Some(Piece::Data(b)) => Some((Ok(b), (Some(rx), None))),
                Some(Piece::Block(head, data)) => Some((Ok(head), (Some(rx), Some(data)))),
                Some(Piece::End) => None,
                // The producer ended without the end marker: fail the body, so that the
                // server aborts the response instead of ending it cleanly.
                None => Some((
                    Err(std::io::Error::other("the CAR stream failed midway")),
                    (None, None),
                )),
            }
        },
    ))
}

async fn produce(state: &State, job: CarJob, tx: &mpsc::Sender<Piece>) -> Result<(), Stop> {
    let header = hamt::car::CarWriter::new(Vec::new(), vec![job.root])
        .await
        .map_err(|e| Stop::Failed(e.to_string()))?
        .finish()
        .await
        .map_err(|e| Stop::Failed(e.to_string()))?;
    send(tx, Piece::Data(header.into())).await?;
    let mut seen = Seen::new(job.dups);
    for (cid, data) in job.path {
        if seen.first(&cid) {
            send(tx, section(&cid, data)).await?;
        }
    }
    let terminal = job.terminal;
    if !job.all {
        if inline_data(&terminal).is_none() && seen.first(&terminal) {
            send(tx, section(&terminal, job.terminal_block)).await?;
        }
        return Ok(());
    }
    // Depth first, pre-order, links in the order the block writes them: a stack of the
    // CIDs still to visit, the next on top.
    let mut stack = Vec::new();
    let mut next = Some((terminal, Some(job.terminal_block)));
    while let Some((cid, known)) = next.take().or_else(|| stack.pop().map(|c| (c, None))) {
        // Identity CIDs carry their bytes: not sent (the spec forbids it), but looked into.
        let identity = inline_data(&cid).map(Bytes::copy_from_slice);
        if identity.is_none() && !seen.first(&cid) {
            continue;
        }
        let data = match (identity, known) {
            (Some(data), _) => data,
            (None, Some(data)) => {
                send(tx, section(&cid, data.clone())).await?;
                data
            }
            (None, None) => {
                // The slot first, then the fetch: a stalled client holds no fetched block.
                let slot = tx.reserve().await.map_err(|_| Stop::ClientGone)?;
                let data = fetch(state, &cid).await?;
                slot.send(section(&cid, data.clone()));
                data
            }
        };
        let children = links(&cid, &data).map_err(Stop::Failed)?;
        stack.extend(children.into_iter().rev());
    }
    Ok(())
}

async fn send(tx: &mpsc::Sender<Piece>, piece: Piece) -> Result<(), Stop> {
    tx.send(piece).await.map_err(|_| Stop::ClientGone)
}

/// A block, verified: a missing or damaged one ends the walk.
async fn fetch(state: &State, cid: &Cid) -> Result<Bytes, Stop> {
    let data = state
        .store
        .get(cid)
        .await
        .map_err(|e| Stop::Failed(format!("block {cid}: {e}")))?;
    match verify(cid, &data) {
        Ok(()) => Ok(data),
        Err(e) => {
            if matches!(e, HamtError::Corrupt { .. }) {
                state.metrics.corrupt();
            }
            Err(Stop::Failed(format!("block {cid}: {e}")))
        }
    }
}

/// A CAR section: the varint length of CID and block, the CID, then the block itself (not
/// copied).
fn section(cid: &Cid, data: Bytes) -> Piece {
    let cid_bytes = cid.to_bytes();
    let mut head = Vec::with_capacity(cid_bytes.len() + 10);
    varint::push(&mut head, (cid_bytes.len() + data.len()) as u64);
    head.extend_from_slice(&cid_bytes);
    Piece::Block(head.into(), data)
}

/// The blocks a `dups=n` stream has sent, as 128-bit keyed fingerprints of their CIDs (16
/// bytes a block instead of a CID's hundred); `dups=y` keeps nothing.
///
/// Two `SipHash` keys drawn at random once per process make the fingerprint a keyed hash that
/// no one outside can aim at, so two CIDs collide by chance only, with a probability of
/// about n² / 2¹²⁹ for n blocks.
struct Seen {
    set: Option<HashSet<u128>>,
}

impl Seen {
    fn new(dups: bool) -> Self {
        Self {
            set: (!dups).then(HashSet::new),
        }
    }

    /// True the first time `cid` is met, and every time when duplicates are sent.
    fn first(&mut self, cid: &Cid) -> bool {
        static KEYS: OnceLock<(RandomState, RandomState)> = OnceLock::new();
        let Some(set) = &mut self.set else {
            return true;
        };
        let (a, b) = KEYS.get_or_init(|| (RandomState::new(), RandomState::new()));
        let fingerprint = (u128::from(a.hash_one(cid)) << 64) | u128::from(b.hash_one(cid));
        set.insert(fingerprint)
    }
}
