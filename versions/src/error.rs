//! The one error type of this crate.

use hamt::{Cid, Conflict};

use crate::refs::RefName;
use crate::zarr;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong with versions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The block store or a tree in it failed.
    #[error(transparent)]
    Hamt(#[from] hamt::Error),

    /// A ref was not what the update expected: another writer moved it first. Nothing was
    /// changed.
    #[error(
        "{name} is at {}, not at {} as this update expected: another writer moved it first",
        shown(.actual.as_ref()), shown(.expected.as_ref())
    )]
    RefConflict {
        /// The ref.
        name: RefName,
        /// What the update expected it to be (`None`: absent).
        expected: Option<Cid>,
        /// What it is.
        actual: Option<Cid>,
    },

    /// A tag cannot be moved once made.
    #[error("{name} exists (at {at}); tags are never moved: delete it first to remake it")]
    TagExists {
        /// The tag.
        name: RefName,
        /// Its commit.
        at: Cid,
    },

    /// No such branch or tag.
    #[error("{name} does not exist")]
    RefNotFound {
        /// The ref.
        name: RefName,
    },

    /// A name that cannot be a branch or a tag.
    #[error("invalid ref name {name:?}: {reason}")]
    InvalidRefName {
        /// The name given.
        name: String,
        /// Why.
        reason: String,
    },

    /// A revision (`BRANCH`, `TAG`, `CID`, `BRANCH~N`) that names nothing.
    #[error("cannot resolve {spec:?}: {reason}")]
    UnknownRevision {
        /// The revision as given.
        spec: String,
        /// Why.
        reason: String,
    },

    /// A block that was expected to be a commit is not one.
    #[error("{cid} is not a commit: {reason}")]
    NotACommit {
        /// The block.
        cid: Cid,
        /// What it is instead, or what is wrong with it.
        reason: String,
    },

    /// Both sides changed the same keys differently; nothing was written.
    #[error("merge conflict: {}", zarr::describe_conflicts(.conflicts, .metadata))]
    MergeConflict {
        /// The keys, with the base's, our and their value, in DAG-CBOR key order.
        conflicts: Vec<Conflict>,
        /// The Zarr arrays and groups among them whose metadata (`zarr.json`) conflicts.
        metadata: Vec<zarr::MetadataConflict>,
    },

    /// A ref store failed (its database, the network, the object store).
    #[error("ref store {store}: {source}")]
    RefStore {
        /// Which ref store (`sled`, `s3`, …).
        store: &'static str,
        /// Whether retrying may succeed.
        temporary: bool,
        /// The backend's error.
        source: hamt::BoxError,
    },

    /// A ref store's record that does not hold what refs hold.
    #[error("ref store {store}: the record of {name} is damaged: {reason}")]
    CorruptRef {
        /// Which ref store.
        store: &'static str,
        /// The ref.
        name: String,
        /// What is wrong.
        reason: String,
    },

    /// Input that is not what the operation takes (a time, a duration, an option).
    #[error("{0}")]
    InvalidInput(String),

    /// Garbage collection refused to run.
    #[error("garbage collection refused: {0}")]
    GcRefused(String),
}

impl Error {
    /// True when retrying may succeed: a temporary store failure, or a ref another writer
    /// moved (read it again and retry).
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Hamt(e) => e.is_temporary(),
            Error::RefStore { temporary, .. } => *temporary,
            Error::RefConflict { .. } => true,
            _ => false,
        }
    }

    /// True for a ref, revision or block that is not there.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Hamt(e) => e.is_not_found(),
            Error::RefNotFound { .. } | Error::UnknownRevision { .. } => true,
            _ => false,
        }
    }
}

fn shown(cid: Option<&Cid>) -> String {
    cid.map_or_else(|| "nothing (absent)".to_owned(), ToString::to_string)
}
