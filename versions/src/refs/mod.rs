//! Refs: branches (moved by every commit) and tags (fixed once made), each naming a commit,
//! in a [`RefStore`] whose one write is a compare-and-swap.

#[cfg(feature = "s3")]
mod object;
#[cfg(feature = "sled")]
mod sled;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use hamt::Cid;

use crate::error::{Error, Result};

#[cfg(feature = "s3")]
pub use self::object::ObjectRefStore;
#[cfg(feature = "sled")]
pub use self::sled::SledRefStore;

/// Longest ref name, in bytes.
const MAX_NAME: usize = 200;

/// Which kind of ref.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefKind {
    /// Moves with every commit.
    Branch,
    /// Made once; never moved (deleting it is the only change).
    Tag,
}

impl RefKind {
    /// The folder of this kind's refs in a store: `heads` or `tags`.
    pub fn dir(self) -> &'static str {
        match self {
            RefKind::Branch => "heads",
            RefKind::Tag => "tags",
        }
    }
}

/// A branch or tag name, checked.
///
/// A name is 1 to 200 bytes of ASCII letters, digits and `-._/`, not starting with `-`, `.`
/// or `/`, not ending with `/` or `.`, without `//`, `..` or `~` (which starts a
/// `NAME~N` revision), and not itself a CID, so that any revision reads one way.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RefName {
    kind: RefKind,
    name: String,
}

impl RefName {
    /// The branch `name`.
    ///
    /// # Errors
    /// [`Error::InvalidRefName`].
    pub fn branch(name: &str) -> Result<Self> {
        Self::new(RefKind::Branch, name)
    }

    /// The tag `name`.
    ///
    /// # Errors
    /// [`Error::InvalidRefName`].
    pub fn tag(name: &str) -> Result<Self> {
        Self::new(RefKind::Tag, name)
    }

    /// A ref of `kind` named `name`.
    ///
    /// # Errors
    /// [`Error::InvalidRefName`].
    pub fn new(kind: RefKind, name: &str) -> Result<Self> {
        check_name(name).map_err(|reason| Error::InvalidRefName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })?;
        Ok(Self {
            kind,
            name: name.to_owned(),
        })
    }

    /// Its kind.
    pub fn kind(&self) -> RefKind {
        self.kind
    }

    /// The name alone (`main`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its path in a store: `heads/NAME` or `tags/NAME`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.kind.dir(), self.name)
    }

    /// The ref at `path` (`heads/NAME`, `tags/NAME`), as stores list them.
    ///
    /// # Errors
    /// [`Error::InvalidRefName`].
    pub fn from_path(path: &str) -> Result<Self> {
        let (dir, name) = path.split_once('/').unwrap_or((path, ""));
        let kind = match dir {
            "heads" => RefKind::Branch,
            "tags" => RefKind::Tag,
            _ => {
                return Err(Error::InvalidRefName {
                    name: path.to_owned(),
                    reason: "a ref path starts with heads/ or tags/".into(),
                });
            }
        };
        Self::new(kind, name)
    }
}

impl fmt::Display for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            RefKind::Branch => "branch",
            RefKind::Tag => "tag",
        };
        write!(f, "{kind} {:?}", self.name)
    }
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > MAX_NAME {
        return Err("it is longer than 200 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._/".contains(&b))
    {
        return Err("only ASCII letters, digits and - . _ / are allowed");
    }
    if name.starts_with(['-', '.', '/']) || name.ends_with(['/', '.']) {
        return Err("it may not start with - . / or end with / .");
    }
    if name.contains("//") || name.contains("..") || name.contains("/.") {
        return Err("it may not hold //, .. or a part starting with .");
    }
    if hamt::parse_cid(name).is_ok() {
        return Err("it reads as a CID");
    }
    Ok(())
}

/// Where refs live: a small map from [`RefName`]s to commit CIDs whose one write is an
/// atomic compare-and-swap, so that two writers racing to move a branch cannot both win
/// and nothing is overwritten silently.
#[async_trait]
pub trait RefStore: Send + Sync + fmt::Debug {
    /// The commit `name` points at, if it exists.
    ///
    /// # Errors
    /// [`Error::RefStore`], [`Error::CorruptRef`].
    async fn get(&self, name: &RefName) -> Result<Option<Cid>>;

    /// Every ref of `kind`, in name order.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    async fn list(&self, kind: RefKind) -> Result<Vec<(RefName, Cid)>>;

    /// Sets `name` to `new` (`None` deletes it) if it is `expected` now (`None`: absent),
    /// atomically and durably.
    ///
    /// # Errors
    /// [`Error::RefConflict`] when it is not `expected`, with what it is: nothing was
    /// changed. [`Error::RefStore`].
    async fn compare_and_swap(
        &self,
        name: &RefName,
        expected: Option<Cid>,
        new: Option<Cid>,
    ) -> Result<()>;
}

/// Refs in this process's memory, gone when it exits: for tests, and for datasets in a
/// memory block store.
#[derive(Debug, Default)]
pub struct MemoryRefStore {
    refs: Mutex<BTreeMap<RefName, Cid>>,
}

impl MemoryRefStore {
    /// No refs.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<RefName, Cid>> {
        // Every critical section is one map operation.
        self.refs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl RefStore for MemoryRefStore {
    async fn get(&self, name: &RefName) -> Result<Option<Cid>> {
        Ok(self.lock().get(name).copied())
    }

    async fn list(&self, kind: RefKind) -> Result<Vec<(RefName, Cid)>> {
        Ok(self
            .lock()
            .iter()
            .filter(|(n, _)| n.kind == kind)
            .map(|(n, c)| (n.clone(), *c))
            .collect())
    }

    async fn compare_and_swap(
        &self,
        name: &RefName,
        expected: Option<Cid>,
        new: Option<Cid>,
    ) -> Result<()> {
        let mut refs = self.lock();
        let actual = refs.get(name).copied();
        if actual != expected {
            return Err(Error::RefConflict {
                name: name.clone(),
                expected,
                actual,
            });
        }
        match new {
            Some(cid) => refs.insert(name.clone(), cid),
            None => refs.remove(name),
        };
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["main", "dev/alice", "v1.0", "release-2024_01", "a"] {
            let b = RefName::branch(good).unwrap();
            assert_eq!(RefName::from_path(&b.path()).unwrap(), b);
        }
        let long = "x".repeat(201);
        for bad in [
            "",
            "-x",
            ".x",
            "/x",
            "x/",
            "x.",
            "a//b",
            "a..b",
            "a/.b",
            "a b",
            "a~1",
            "a:b",
            "ünï",
            &long,
            "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        ] {
            assert!(
                matches!(RefName::branch(bad), Err(Error::InvalidRefName { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(RefName::tag("v1").unwrap().path(), "tags/v1");
        assert!(RefName::from_path("other/x").is_err());
    }
}
