//! [`SledSweep`]: garbage collection of a sled store's blocks.

use std::collections::HashSet;

use async_trait::async_trait;
use hamt::Cid;
use hamt_store_sled::{SledStore, Table};

use super::{GcOptions, Sweep, SweepReport, age};
use crate::commit::{from_ms, to_ms};
use crate::error::Result;

/// The table of marks: block CID → when it was first seen unreachable (milliseconds since
/// the Unix epoch, big-endian).
const MARKS: &str = "gc-marks";

/// Deletes a sled store's unreachable blocks once each has been seen unreachable for the
/// grace period: the first run that finds a block unreachable marks it with the time (in
/// the store's `gc-marks` table), a later run deletes it if the mark is old enough and it
/// is still unreachable; a block found live again loses its mark. With a grace period of
/// zero, unreachable blocks go at once.
#[derive(Debug, Clone)]
pub struct SledSweep {
    store: SledStore,
    marks: Table,
}

impl SledSweep {
    /// The sweep of `store`.
    ///
    /// # Errors
    /// sled failures.
    pub fn new(store: &SledStore) -> Result<Self> {
        Ok(Self {
            marks: store.table(MARKS)?,
            store: store.clone(),
        })
    }

    fn mark_of(&self, cid: &Cid) -> Result<Option<i64>> {
        Ok(self
            .marks
            .get(&cid.to_bytes())?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(i64::from_be_bytes))
    }
}

#[async_trait]
impl Sweep for SledSweep {
    async fn sweep(&self, live: &HashSet<Cid>, options: &GcOptions) -> Result<SweepReport> {
        let now = options.now();
        let mut report = SweepReport {
            unit: "blocks",
            ..SweepReport::default()
        };
        let mut doomed = Vec::new();
        for (cid, len) in self.store.list_blocks()? {
            report.held += 1;
            report.held_bytes += len;
            let mark = self.mark_of(&cid)?;
            if live.contains(&cid) {
                if mark.is_some() && !options.dry_run {
                    self.marks.remove(&cid.to_bytes())?;
                }
                continue;
            }
            report.unreachable += 1;
            let seen = mark.map_or(now, from_ms);
            if age(now, seen) >= options.grace {
                report.deleted += 1;
                report.deleted_bytes += len;
                if options.list {
                    report.listed.push(cid.to_string());
                }
                doomed.push(cid);
            } else {
                report.pending += 1;
                report.pending_bytes += len;
                if mark.is_none() && !options.dry_run {
                    self.marks
                        .insert(&cid.to_bytes(), &to_ms(now).to_be_bytes())?;
                }
            }
        }
        if !options.dry_run {
            self.store.delete_blocks(&doomed)?;
            for cid in &doomed {
                self.marks.remove(&cid.to_bytes())?;
            }
            self.store.flush().await?;
        }
        Ok(report)
    }
}
