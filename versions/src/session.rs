//! [`Session`]: a writer's view of a branch, with forks for parallel writers that are merged
//! back and committed with one compare-and-swap.
//!
//! This is the shape a Python `session.fork()` / `session.merge(*forks)` /
//! `session.commit()` sits on: a fork is nothing but a tree root and the root it started
//! from, cheap to send to another process; merging is the three-way merge of trees; a
//! commit is a compare-and-swap of the branch, rebased when another writer won the race.

use hamt::Cid;

use crate::error::Result;
use crate::repo::{CommitOptions, Committed, Repo};

/// A tree a parallel writer started from (`base`) and the tree it ended with (`root`):
/// what it changed is the difference of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fork {
    /// The tree the writer started from.
    pub base: Cid,
    /// The tree it wrote (`base` until it writes).
    pub root: Cid,
}

impl Fork {
    /// The same fork after its writer flushed `root`.
    #[must_use]
    pub fn with_root(self, root: Cid) -> Self {
        Self { root, ..self }
    }
}

/// A writer's view of a branch: the commit it started from, and the tree it has now.
#[derive(Debug, Clone)]
pub struct Session {
    repo: Repo,
    branch: String,
    base: Option<Cid>,
    base_root: Cid,
    root: Cid,
}

impl Session {
    /// A session on `branch` at its head (on the empty tree when the branch does not exist
    /// yet: the first commit makes it).
    ///
    /// # Errors
    /// [`Error::InvalidRefName`](crate::Error::InvalidRefName); store and ref store failures.
    pub async fn open(repo: &Repo, branch: &str) -> Result<Self> {
        let base = repo.head(branch).await?;
        let base_root = match base {
            Some(c) => repo.commit_info(&c).await?.root,
            None => repo.empty_root().await?,
        };
        Ok(Self {
            repo: repo.clone(),
            branch: branch.to_owned(),
            base,
            base_root,
            root: base_root,
        })
    }

    /// The branch.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The commit the session started from (or last committed).
    pub fn base(&self) -> Option<Cid> {
        self.base
    }

    /// The tree of [`base`](Self::base).
    pub fn base_root(&self) -> Cid {
        self.base_root
    }

    /// The tree as the session has it now.
    pub fn root(&self) -> Cid {
        self.root
    }

    /// True when the tree differs from the base's.
    pub fn has_changes(&self) -> bool {
        self.root != self.base_root
    }

    /// Takes `root`, a tree written on top of [`root`](Self::root) (through a
    /// [`hamt::Hamt`] opened there).
    pub fn set_root(&mut self, root: Cid) {
        self.root = root;
    }

    /// A fork of the tree as it is now, for a parallel writer.
    pub fn fork(&self) -> Fork {
        Fork {
            base: self.root,
            root: self.root,
        }
    }

    /// Merges what each fork changed into the session's tree, one after the other;
    /// returns the new tree. All or nothing: on a conflict the tree stays as it was.
    ///
    /// # Errors
    /// [`Error::MergeConflict`](crate::Error::MergeConflict) when forks (or a fork and the
    /// session) changed a key differently; store failures.
    pub async fn merge(&mut self, forks: &[Fork]) -> Result<Cid> {
        let mut root = self.root;
        for fork in forks {
            root = self.repo.merge_roots(fork.base, root, fork.root).await?;
        }
        self.root = root;
        Ok(root)
    }

    /// Commits the tree to the branch with one compare-and-swap from the base; when another
    /// writer committed first, the session's changes are merged onto the new head and
    /// committed after it. Afterwards the commit is the session's base.
    ///
    /// # Errors
    /// As [`Repo::commit_rebasing`].
    pub async fn commit(&mut self, message: &str, options: &CommitOptions) -> Result<Committed> {
        let done = self
            .repo
            .commit_rebasing(&self.branch, self.base, self.root, message, options)
            .await?;
        self.base = Some(done.commit);
        self.base_root = done.root;
        self.root = done.root;
        Ok(done)
    }
}
