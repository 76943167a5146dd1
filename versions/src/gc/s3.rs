//! [`S3Sweep`]: garbage collection of an S3 store's packs.

use std::collections::HashSet;

use async_trait::async_trait;
use hamt::Cid;
use hamt_store_s3::S3Store;

use super::{GcOptions, Sweep, SweepReport, age};
use crate::error::{Error, Result};

/// Deletes an S3 store's packs that hold no live block and were uploaded longer ago than
/// the grace period (packs left without an index by an interrupted upload included). A
/// pack that holds live blocks stays whole; its unreachable blocks' bytes are reported as
/// reclaimable.
#[derive(Debug, Clone)]
pub struct S3Sweep {
    store: S3Store,
}

impl S3Sweep {
    /// The sweep of `store`.
    pub fn new(store: &S3Store) -> Self {
        Self {
            store: store.clone(),
        }
    }
}

fn failed(e: hamt_store_s3::Error) -> Error {
    Error::Hamt(e.into())
}

#[async_trait]
impl Sweep for S3Sweep {
    async fn sweep(&self, live: &HashSet<Cid>, options: &GcOptions) -> Result<SweepReport> {
        let now = options.now();
        let mut report = SweepReport {
            unit: "packs",
            ..SweepReport::default()
        };
        // Blocks still waiting to be packed are a writer's, not garbage.
        self.store.sync().await.map_err(failed)?;
        for pack in self.store.list_packs().await.map_err(failed)? {
            report.held += 1;
            report.held_bytes += pack.bytes;
            let dead: u64 = pack
                .blocks
                .iter()
                .filter(|(cid, _)| !live.contains(cid))
                .map(|(_, len)| len)
                .sum();
            if pack.blocks.iter().any(|(cid, _)| live.contains(cid)) {
                report.reclaimable_bytes += dead;
                continue;
            }
            report.unreachable += 1;
            if age(now, pack.modified) < options.grace {
                report.pending += 1;
                report.pending_bytes += pack.bytes;
                continue;
            }
            report.deleted += 1;
            report.deleted_bytes += pack.bytes;
            if options.list {
                report.listed.push(pack.path.clone());
            }
            if !options.dry_run {
                self.store.delete_pack(&pack.name).await.map_err(failed)?;
            }
        }
        Ok(report)
    }
}
