//! Garbage collection: deleting what no ref keeps.
//!
//! Every block reachable from a branch, a tag or the commits they follow (the commits, their
//! datasets' nodes and values) is live. A backend's [`Sweep`] deletes the rest, in whatever
//! units it can delete (sled: blocks; S3: whole packs, none of whose blocks is live), but
//! only once a **grace period** has passed, so that a writer whose blocks are written and
//! whose commit is not made yet is not robbed: sled blocks carry no time, so a block is
//! deleted once it has been seen unreachable for the grace period (marks kept in the store,
//! so it takes a second run after the first sighting); S3 packs carry their upload time. A
//! dry run deletes and marks nothing and says what a run would do.
//!
//! What grace cannot cover: a writer that stores a block which is already in the store
//! (content addressing writes it once) relies on the old copy; if that copy had been
//! unreachable for the grace period it can be deleted under the writer. Run garbage
//! collection when no writer session has been running longer than the grace period, or
//! with a grace period longer than any writer's session.

#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "sled")]
mod sled;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hamt::{BlockStore, Cid, Codec};

use crate::error::{Error, Result};
use crate::refs::RefKind;
use crate::repo::Repo;

#[cfg(feature = "s3")]
pub use self::s3::S3Sweep;
#[cfg(feature = "sled")]
pub use self::sled::SledSweep;

/// Blocks fetched at once by the walk of live blocks.
const BATCH: usize = 1024;

/// How a garbage collection runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcOptions {
    /// Nothing younger than this is deleted (see the module docs for what young means per
    /// store).
    pub grace: Duration,
    /// Report what would be deleted; delete and mark nothing.
    pub dry_run: bool,
    /// Name every unit deleted (or that would be) in the report.
    pub list: bool,
    /// Run even when there are no refs at all (everything unreachable then goes).
    pub allow_no_refs: bool,
    /// The time to measure ages against (now, unless a test says otherwise).
    pub now: Option<SystemTime>,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_hours(24),
            dry_run: false,
            list: false,
            allow_no_refs: false,
            now: None,
        }
    }
}

impl GcOptions {
    /// The time ages are measured against.
    pub fn now(&self) -> SystemTime {
        self.now.unwrap_or_else(SystemTime::now)
    }
}

/// What a [`Sweep`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepReport {
    /// What the store deletes: `blocks` or `packs`.
    pub unit: &'static str,
    /// Units held, and their bytes.
    pub held: u64,
    /// Bytes of the units held.
    pub held_bytes: u64,
    /// Units that hold no live block.
    pub unreachable: u64,
    /// Units deleted (or that a dry run would delete).
    pub deleted: u64,
    /// Their bytes.
    pub deleted_bytes: u64,
    /// Unreachable units kept because they are within the grace period.
    pub pending: u64,
    /// Their bytes.
    pub pending_bytes: u64,
    /// Bytes of unreachable blocks inside units that also hold live ones (S3 packs): they
    /// would only come back by rewriting the packs.
    pub reclaimable_bytes: u64,
    /// The units deleted (or that would be), when asked for.
    pub listed: Vec<String>,
}

/// A backend's side of garbage collection: deleting units that hold no live block.
#[async_trait]
pub trait Sweep: Send + Sync {
    /// Deletes (or, in a dry run, reports) the units of the store none of whose blocks is
    /// in `live`, sparing those within `options.grace`.
    ///
    /// # Errors
    /// The store's failures.
    async fn sweep(&self, live: &HashSet<Cid>, options: &GcOptions) -> Result<SweepReport>;
}

/// What [`Repo::gc`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Branches and tags that kept blocks alive.
    pub refs: usize,
    /// Live blocks found.
    pub live: u64,
    /// What the sweep did.
    pub sweep: SweepReport,
}

impl Repo {
    /// Every block reachable from every branch and tag: commits, their parents, their
    /// datasets' nodes and values. Raw blocks are not read (they have no links), so values
    /// cost nothing but their CIDs. Returns the number of refs and the blocks.
    ///
    /// # Errors
    /// A block that is missing ([`hamt::Error::NotFound`]: the walk stops, and nothing may be
    /// deleted on an incomplete picture); ref store and store failures.
    pub async fn live_blocks(&self) -> Result<(usize, HashSet<Cid>)> {
        let mut roots = Vec::new();
        for kind in [RefKind::Branch, RefKind::Tag] {
            roots.extend(self.list(kind).await?.into_iter().map(|(_, c)| c));
        }
        let refs = roots.len();
        Ok((refs, reachable(self.store().as_ref(), roots).await?))
    }

    /// Collects garbage: finds the live blocks, then lets `sweep` delete the rest.
    ///
    /// # Errors
    /// [`Error::GcRefused`] when there are no refs and `options.allow_no_refs` is not set
    /// (everything would be garbage: more likely the wrong ref store); as
    /// [`live_blocks`](Self::live_blocks) and the sweep.
    pub async fn gc(&self, sweep: &dyn Sweep, options: &GcOptions) -> Result<GcReport> {
        let (refs, live) = self.live_blocks().await?;
        if refs == 0 && !options.allow_no_refs {
            return Err(Error::GcRefused(
                "there are no branches or tags, so every block would be deleted (is this the \
                 right ref store? allow it explicitly to go on)"
                    .into(),
            ));
        }
        let report = sweep.sweep(&live, options).await?;
        if !options.dry_run {
            self.store().sync().await?;
        }
        Ok(GcReport {
            refs,
            live: live.len() as u64,
            sweep: report,
        })
    }
}

/// Every block reachable from `roots`, read level by level in batches; raw blocks are
/// recorded without being read, as they link to nothing. ([`hamt::dag::Walk`] reads every
/// block, values included, which for a dataset is all its data.)
async fn reachable(store: &dyn BlockStore, roots: Vec<Cid>) -> Result<HashSet<Cid>> {
    let mut seen = HashSet::new();
    let mut level: Vec<Cid> = Vec::new();
    let visit = |cid: Cid, seen: &mut HashSet<Cid>, next: &mut Vec<Cid>| {
        if hamt::inline_data(&cid).is_none() && seen.insert(cid) && cid.codec() != Codec::Raw.code()
        {
            next.push(cid);
        }
    };
    for root in roots {
        visit(root, &mut seen, &mut level);
    }
    while !level.is_empty() {
        let mut next = Vec::new();
        for chunk in level.chunks(BATCH) {
            let blocks = store.get_many(chunk).await?;
            for (cid, data) in chunk.iter().zip(blocks) {
                for link in hamt::dag::links(cid, &data)? {
                    visit(link, &mut seen, &mut next);
                }
            }
        }
        level = next;
    }
    Ok(seen)
}

#[cfg(any(feature = "sled", feature = "s3"))]
/// `time`'s age at `now` (zero for a time in the future).
pub(crate) fn age(now: SystemTime, time: SystemTime) -> Duration {
    now.duration_since(time).unwrap_or_default()
}
