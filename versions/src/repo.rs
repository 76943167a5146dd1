//! [`Repo`]: a block store and a ref store, and every operation on versions.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use futures::TryStreamExt as _;
use hamt::{BlockStore, Change, Cid, Config, Hamt, MergeOutcome};

use crate::commit::Commit;
use crate::error::{Error, Result};
use crate::refs::{RefKind, RefName, RefStore};
use crate::zarr;

/// How many times a commit that lost a race rebases itself before giving up.
const MAX_REBASES: u32 = 32;

/// A dataset's versions: its blocks (datasets and commits) and its refs.
///
/// Cloning is cheap; clones share the stores.
#[derive(Debug, Clone)]
pub struct Repo {
    store: Arc<dyn BlockStore>,
    refs: Arc<dyn RefStore>,
    config: Config,
}

/// What a revision (`BRANCH`, `TAG`, `CID`, `BRANCH~N`) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revision {
    /// The commit, unless the revision is a bare HAMT root.
    pub commit: Option<Cid>,
    /// The dataset's HAMT root.
    pub root: Cid,
}

/// What goes into a commit besides its root and parents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOptions {
    /// Who makes it.
    pub author: Option<String>,
    /// Anything else to keep with it.
    pub metadata: BTreeMap<String, String>,
    /// Its time in milliseconds since the Unix epoch (default: now).
    pub time_ms: Option<i64>,
}

/// A commit that reached its branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The new commit, now the branch's head.
    pub commit: Cid,
    /// Its dataset root (the merged one, after a rebase).
    pub root: Cid,
    /// The head it follows (`None` for a branch's first commit).
    pub parent: Option<Cid>,
    /// How many times it was rebased on a head another writer moved first.
    pub rebased: u32,
}

/// One commit of a [`Repo::log`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The commit's CID.
    pub cid: Cid,
    /// The commit.
    pub commit: Commit,
    /// The keys it changed against its first parent (against the empty tree for a first
    /// commit), in key order, when asked for.
    pub changes: Option<Vec<Change>>,
}

/// What merging into a branch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merged {
    /// The branch already holds the other commit: nothing to do.
    UpToDate(Cid),
    /// The branch was behind the other commit and now points at it.
    FastForward(Cid),
    /// A merge commit with both as parents is the branch's new head.
    Merged(Cid),
}

impl Merged {
    /// The branch's head afterwards.
    pub fn head(self) -> Cid {
        match self {
            Merged::UpToDate(c) | Merged::FastForward(c) | Merged::Merged(c) => c,
        }
    }
}

impl Repo {
    /// Versions kept in `store`, with refs in `refs`, for trees of py-hamt's default bucket
    /// size.
    pub fn new(store: Arc<dyn BlockStore>, refs: Arc<dyn RefStore>) -> Self {
        Self {
            store,
            refs,
            config: Config::default(),
        }
    }

    /// The tree configuration merges build with (its bucket size must be the trees').
    #[must_use]
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The block store.
    pub fn store(&self) -> &Arc<dyn BlockStore> {
        &self.store
    }

    /// The ref store.
    pub fn refs(&self) -> &Arc<dyn RefStore> {
        &self.refs
    }

    /// The tree configuration.
    pub fn config(&self) -> Config {
        self.config
    }

    /// The root of the empty tree, written to the store: the base of a branch's first
    /// commit.
    ///
    /// # Errors
    /// Store failures.
    pub async fn empty_root(&self) -> Result<Cid> {
        Ok(Hamt::with_config(self.store.clone(), self.config)?
            .flush()
            .await?)
    }

    /// Reads the commit `cid`.
    ///
    /// # Errors
    /// Store failures; [`Error::NotACommit`].
    pub async fn commit_info(&self, cid: &Cid) -> Result<Commit> {
        Commit::read(self.store.as_ref(), cid).await
    }

    /// The dataset root of `commit`, or the empty tree's for `None`.
    async fn root_of(&self, commit: Option<Cid>) -> Result<Cid> {
        match commit {
            Some(c) => Ok(self.commit_info(&c).await?.root),
            None => self.empty_root().await,
        }
    }

    /// The head of `branch`, if it exists.
    ///
    /// # Errors
    /// [`Error::InvalidRefName`]; ref store failures.
    pub async fn head(&self, branch: &str) -> Result<Option<Cid>> {
        self.refs.get(&RefName::branch(branch)?).await
    }

    /// What `spec` names: a branch (its head), a tag, a commit CID, a bare HAMT root CID,
    /// any of the first three followed by `~N` (N first parents back).
    ///
    /// # Errors
    /// [`Error::UnknownRevision`]; store and ref store failures.
    pub async fn resolve(&self, spec: &str) -> Result<Revision> {
        let unknown = |reason: String| Error::UnknownRevision {
            spec: spec.to_owned(),
            reason,
        };
        let (name, back) = match spec.rsplit_once('~') {
            Some((name, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                let n: u64 = n
                    .parse()
                    .map_err(|_| unknown(format!("~{n} is too far back")))?;
                (name, n)
            }
            _ => (spec, 0),
        };
        let start = match hamt::parse_cid(name) {
            Ok(cid) => cid,
            Err(cid_error) => {
                let branch = RefName::branch(name)
                    .map_err(|_| unknown(format!("not a CID ({cid_error}) nor a ref name")))?;
                match self.refs.get(&branch).await? {
                    Some(cid) => cid,
                    None => match self.refs.get(&RefName::tag(name)?).await? {
                        Some(cid) => cid,
                        None => {
                            return Err(unknown(format!(
                                "no branch or tag {name:?}, and not a CID ({cid_error})"
                            )));
                        }
                    },
                }
            }
        };
        let Some(mut commit) = Commit::read_if_commit(self.store.as_ref(), &start).await? else {
            if back > 0 {
                return Err(unknown(format!(
                    "{start} is a tree, not a commit: it has no history"
                )));
            }
            return Ok(Revision {
                commit: None,
                root: start,
            });
        };
        let mut cid = start;
        for step in 0..back {
            let Some(parent) = commit.parents.first().copied() else {
                return Err(unknown(format!(
                    "the history has only {step} commit{} before it",
                    if step == 1 { "" } else { "s" }
                )));
            };
            commit = self.commit_info(&parent).await?;
            cid = parent;
        }
        Ok(Revision {
            commit: Some(cid),
            root: commit.root,
        })
    }

    /// Commits `root` to `branch` if its head is `expected` (`None`: the branch does not
    /// exist yet, and is created): the new commit's parent is `expected`. The commit block
    /// and everything before it is made durable before the branch moves.
    ///
    /// # Errors
    /// [`Error::RefConflict`] when another writer moved the branch first (nothing changed;
    /// see [`commit_rebasing`](Self::commit_rebasing)); store and ref store failures.
    pub async fn commit(
        &self,
        branch: &str,
        root: Cid,
        expected: Option<Cid>,
        message: &str,
        options: &CommitOptions,
    ) -> Result<Committed> {
        let name = RefName::branch(branch)?;
        let mut commit = Commit::new(root, expected.into_iter().collect(), message);
        commit.author.clone_from(&options.author);
        commit.metadata.clone_from(&options.metadata);
        if let Some(t) = options.time_ms {
            commit.time_ms = t;
        }
        let cid = commit.write(self.store.as_ref()).await?;
        // A ref must never name a block that a crash could lose.
        self.store.sync().await?;
        self.refs
            .compare_and_swap(&name, expected, Some(cid))
            .await?;
        Ok(Committed {
            commit: cid,
            root,
            parent: expected,
            rebased: 0,
        })
    }

    /// Commits `root`, a tree written on top of the commit `base` (`None`: on the empty
    /// tree of a branch not made yet), to `branch`. When another writer moved the branch
    /// first, the changes from `base` to `root` are merged three-way onto the new head and
    /// committed after it, as often as it takes (up to 32 times).
    ///
    /// # Errors
    /// [`Error::MergeConflict`] when the changes conflict with the other writer's;
    /// [`Error::RefConflict`] when the branch was deleted meanwhile, or after 32 lost races;
    /// store and ref store failures.
    pub async fn commit_rebasing(
        &self,
        branch: &str,
        base: Option<Cid>,
        root: Cid,
        message: &str,
        options: &CommitOptions,
    ) -> Result<Committed> {
        let mut base_root = self.root_of(base).await?;
        let (mut parent, mut root) = (base, root);
        let mut rebased = 0;
        loop {
            match self.commit(branch, root, parent, message, options).await {
                Ok(done) => return Ok(Committed { rebased, ..done }),
                Err(Error::RefConflict {
                    actual: Some(head), ..
                }) if rebased < MAX_REBASES => {
                    let head_root = self.commit_info(&head).await?.root;
                    root = self.merge_roots(base_root, root, head_root).await?;
                    base_root = head_root;
                    parent = Some(head);
                    rebased += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The three-way merge of trees, conflicts as [`Error::MergeConflict`] with the Zarr
    /// arrays among them described.
    ///
    /// # Errors
    /// [`Error::MergeConflict`]; store failures.
    pub async fn merge_roots(&self, base: Cid, ours: Cid, theirs: Cid) -> Result<Cid> {
        match hamt::merge_with_config(self.store.clone(), self.config, base, ours, theirs).await? {
            MergeOutcome::Merged(root) => Ok(root),
            MergeOutcome::Conflicts(conflicts) => {
                let metadata = zarr::metadata_conflicts(self.store.as_ref(), &conflicts).await;
                Err(Error::MergeConflict {
                    conflicts,
                    metadata,
                })
            }
        }
    }

    /// The history from `start` back along first parents, newest first, at most `limit`
    /// commits; with `changes`, the keys each commit changed.
    ///
    /// # Errors
    /// Store failures; [`Error::NotACommit`].
    pub async fn log(
        &self,
        start: Cid,
        limit: Option<usize>,
        with_changes: bool,
    ) -> Result<Vec<LogEntry>> {
        let mut out = Vec::new();
        let mut next = Some(start);
        let mut empty = None;
        while let Some(cid) = next {
            if limit.is_some_and(|n| out.len() >= n) {
                break;
            }
            let commit = self.commit_info(&cid).await?;
            next = commit.parents.first().copied();
            let changes = if with_changes {
                let before = match next {
                    Some(parent) => self.commit_info(&parent).await?.root,
                    None => match empty {
                        Some(e) => e,
                        None => *empty.insert(self.empty_root().await?),
                    },
                };
                let mut keys: Vec<Change> = hamt::diff(self.store.clone(), before, commit.root)
                    .try_collect()
                    .await?;
                keys.sort_by(|a, b| a.key().cmp(b.key()));
                Some(keys)
            } else {
                None
            };
            out.push(LogEntry {
                cid,
                commit,
                changes,
            });
        }
        Ok(out)
    }

    /// Every ref of `kind`, in name order.
    ///
    /// # Errors
    /// Ref store failures.
    pub async fn list(&self, kind: RefKind) -> Result<Vec<(RefName, Cid)>> {
        self.refs.list(kind).await
    }

    /// Makes the branch `name` at `commit`.
    ///
    /// # Errors
    /// [`Error::RefConflict`] when it exists; [`Error::NotACommit`]; store failures.
    pub async fn create_branch(&self, name: &str, commit: Cid) -> Result<()> {
        self.commit_info(&commit).await?;
        self.refs
            .compare_and_swap(&RefName::branch(name)?, None, Some(commit))
            .await
    }

    /// Points the branch `name` at `commit` if it is at `expected` (`None`: wherever it is
    /// now, read first; the swap still fails if it moves meanwhile).
    ///
    /// # Errors
    /// [`Error::RefNotFound`], [`Error::RefConflict`], [`Error::NotACommit`].
    pub async fn reset_branch(
        &self,
        name: &str,
        commit: Cid,
        expected: Option<Cid>,
    ) -> Result<Cid> {
        self.commit_info(&commit).await?;
        let name = RefName::branch(name)?;
        let expected = self.current(&name, expected).await?;
        self.refs
            .compare_and_swap(&name, Some(expected), Some(commit))
            .await?;
        Ok(expected)
    }

    /// Deletes the branch `name` if it is at `expected` (`None`: wherever it is now);
    /// returns where it was. Its commits stay until garbage collection finds nothing else
    /// keeps them.
    ///
    /// # Errors
    /// [`Error::RefNotFound`], [`Error::RefConflict`].
    pub async fn delete_branch(&self, name: &str, expected: Option<Cid>) -> Result<Cid> {
        let name = RefName::branch(name)?;
        let was = self.current(&name, expected).await?;
        self.refs.compare_and_swap(&name, Some(was), None).await?;
        Ok(was)
    }

    /// Makes the tag `name` at `commit`. Tags never move.
    ///
    /// # Errors
    /// [`Error::TagExists`]; [`Error::NotACommit`]; store failures.
    pub async fn create_tag(&self, name: &str, commit: Cid) -> Result<()> {
        self.commit_info(&commit).await?;
        let name = RefName::tag(name)?;
        match self.refs.compare_and_swap(&name, None, Some(commit)).await {
            Err(Error::RefConflict {
                actual: Some(at), ..
            }) => Err(Error::TagExists { name, at }),
            other => other,
        }
    }

    /// Deletes the tag `name`; returns its commit.
    ///
    /// # Errors
    /// [`Error::RefNotFound`]; ref store failures.
    pub async fn delete_tag(&self, name: &str) -> Result<Cid> {
        let name = RefName::tag(name)?;
        let was = self.current(&name, None).await?;
        self.refs.compare_and_swap(&name, Some(was), None).await?;
        Ok(was)
    }

    /// `expected`, or the ref's current commit; [`Error::RefNotFound`] when it is absent.
    async fn current(&self, name: &RefName, expected: Option<Cid>) -> Result<Cid> {
        if let Some(e) = expected {
            return Ok(e);
        }
        self.refs
            .get(name)
            .await?
            .ok_or_else(|| Error::RefNotFound { name: name.clone() })
    }

    /// Merges the commit `other` into `branch`: nothing when the branch holds it already, a
    /// fast-forward when the branch is behind it, else a three-way merge of the datasets
    /// from their common ancestor, committed with the branch's head and `other` as parents.
    ///
    /// # Errors
    /// [`Error::MergeConflict`] (nothing was written to the branch); [`Error::RefConflict`]
    /// when another writer moved the branch meanwhile; [`Error::RefNotFound`]; store and
    /// ref store failures.
    pub async fn merge_into(
        &self,
        branch: &str,
        other: Cid,
        message: &str,
        options: &CommitOptions,
    ) -> Result<Merged> {
        let name = RefName::branch(branch)?;
        let head = self
            .refs
            .get(&name)
            .await?
            .ok_or_else(|| Error::RefNotFound { name: name.clone() })?;
        let theirs = self.commit_info(&other).await?;
        if head == other || self.ancestors(head).await?.contains(&other) {
            return Ok(Merged::UpToDate(head));
        }
        let other_ancestors = self.ancestors(other).await?;
        if other_ancestors.contains(&head) {
            self.refs
                .compare_and_swap(&name, Some(head), Some(other))
                .await?;
            return Ok(Merged::FastForward(other));
        }
        let base = self.merge_base(head, &other_ancestors).await?;
        let base_root = self.root_of(base).await?;
        let ours = self.commit_info(&head).await?;
        let root = self.merge_roots(base_root, ours.root, theirs.root).await?;
        let mut commit = Commit::new(root, vec![head, other], message);
        commit.author.clone_from(&options.author);
        commit.metadata.clone_from(&options.metadata);
        if let Some(t) = options.time_ms {
            commit.time_ms = t;
        }
        let cid = commit.write(self.store.as_ref()).await?;
        self.store.sync().await?;
        self.refs
            .compare_and_swap(&name, Some(head), Some(cid))
            .await?;
        Ok(Merged::Merged(cid))
    }

    /// Every commit `start` follows, all parents, `start` included.
    async fn ancestors(&self, start: Cid) -> Result<HashSet<Cid>> {
        let mut seen = HashSet::from([start]);
        let mut queue = VecDeque::from([start]);
        while let Some(cid) = queue.pop_front() {
            for parent in self.commit_info(&cid).await?.parents {
                if seen.insert(parent) {
                    queue.push_back(parent);
                }
            }
        }
        Ok(seen)
    }

    /// The nearest commit from `head` (breadth first) that `other` also follows.
    async fn merge_base(&self, head: Cid, other: &HashSet<Cid>) -> Result<Option<Cid>> {
        let mut seen = HashSet::from([head]);
        let mut queue = VecDeque::from([head]);
        while let Some(cid) = queue.pop_front() {
            if other.contains(&cid) {
                return Ok(Some(cid));
            }
            for parent in self.commit_info(&cid).await?.parents {
                if seen.insert(parent) {
                    queue.push_back(parent);
                }
            }
        }
        Ok(None)
    }
}
