//! Expiry: dropping a branch's commits older than a point from its history, so that
//! garbage collection can take what only they kept.
//!
//! Parents are part of a commit's CID, so a history cannot lose a commit without the
//! commits after it being written again: the kept commits are rewritten with the same
//! root, message, time, author and metadata and only their parents changed (an expired
//! parent is replaced by its nearest kept ancestors, none for the oldest kept commit), and
//! the branch moves to the rewritten head by compare-and-swap. Every kept commit stays a
//! whole DAG: a CAR export or a gateway still has everything it links to. Tags and other
//! branches are not touched: a tag on an expired commit keeps it and its history alive.

use std::collections::{HashMap, HashSet};

use hamt::Cid;

use crate::commit::Commit;
use crate::error::{Error, Result};
use crate::refs::RefName;
use crate::repo::Repo;

/// What [`Repo::expire`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    /// The branch's head before.
    pub old_head: Cid,
    /// Its head now (the same when nothing expired).
    pub head: Cid,
    /// Commits kept in its history.
    pub kept: usize,
    /// Commits dropped from it.
    pub expired: usize,
}

impl Repo {
    /// Drops the commits of `branch`'s history made before `before_ms` (milliseconds since
    /// the Unix epoch); the head is always kept.
    ///
    /// # Errors
    /// [`Error::RefNotFound`]; [`Error::RefConflict`] when the branch moved meanwhile (run
    /// it again); store failures.
    pub async fn expire(&self, branch: &str, before_ms: i64) -> Result<Expired> {
        let name = RefName::branch(branch)?;
        let head = self
            .refs()
            .get(&name)
            .await?
            .ok_or_else(|| Error::RefNotFound { name: name.clone() })?;
        // Every commit of the history, and an order with parents before children.
        let mut commits: HashMap<Cid, Commit> = HashMap::new();
        let mut order = Vec::new();
        let mut stack = vec![(head, false)];
        let mut done = HashSet::new();
        while let Some((cid, expanded)) = stack.pop() {
            if expanded {
                order.push(cid);
                continue;
            }
            if !done.insert(cid) {
                continue;
            }
            let commit = self.commit_info(&cid).await?;
            stack.push((cid, true));
            for parent in commit.parents.iter().rev() {
                if !done.contains(parent) {
                    stack.push((*parent, false));
                }
            }
            commits.insert(cid, commit);
        }
        let keep = |cid: &Cid| *cid == head || commits[cid].time_ms >= before_ms;
        let kept = order.iter().filter(|c| keep(c)).count();
        let expired = order.len() - kept;
        if expired == 0 {
            return Ok(Expired {
                old_head: head,
                head,
                kept,
                expired,
            });
        }
        // For each commit: what stands for it in the new history (itself rewritten when
        // kept, its nearest kept ancestors when expired).
        let mut stands: HashMap<Cid, Vec<Cid>> = HashMap::new();
        for cid in &order {
            let commit = &commits[cid];
            let mut parents = Vec::new();
            for p in &commit.parents {
                for s in &stands[p] {
                    if !parents.contains(s) {
                        parents.push(*s);
                    }
                }
            }
            let now = if keep(cid) {
                let new = if parents == commit.parents {
                    *cid
                } else {
                    let mut rewritten = commit.clone();
                    rewritten.parents = parents;
                    rewritten.write(self.store().as_ref()).await?
                };
                vec![new]
            } else {
                parents
            };
            stands.insert(*cid, now);
        }
        let new_head = stands[&head][0];
        self.store().sync().await?;
        self.refs()
            .compare_and_swap(&name, Some(head), Some(new_head))
            .await?;
        Ok(Expired {
            old_head: head,
            head: new_head,
            kept,
            expired,
        })
    }
}
