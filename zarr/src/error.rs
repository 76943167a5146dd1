//! The one error type of this crate.

use std::path::PathBuf;

use zarrs_storage::StorageError;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a Zarr store over a HAMT.
///
/// Through the `zarrs_storage` traits these arrive as [`StorageError`]s (their message kept);
/// the inherent methods of [`HamtStore`](crate::HamtStore) return them typed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The HAMT or its block store failed.
    #[error(transparent)]
    Hamt(#[from] hamt::Error),

    /// A write was attempted on a store opened read-only.
    #[error("the store is read-only")]
    ReadOnly,

    /// A value did not authenticate under the encryption key and header: the key or header is
    /// wrong, or the stored bytes were altered. Nothing is returned in that case.
    #[error("cannot decrypt {key:?}: authentication failed (wrong key or header, or altered data)")]
    Decryption {
        /// The Zarr key whose value failed to decrypt.
        key: String,
    },

    /// An encryption key of the wrong length.
    #[error("an encryption key must be 32 bytes, got {len}")]
    InvalidEncryptionKey {
        /// The length given.
        len: usize,
    },

    /// A HAMT key that is not a valid Zarr store key.
    #[error("{key:?} is not a valid Zarr key: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A byte range outside the value.
    #[error("byte range {range} is outside {key:?} ({len} bytes)")]
    InvalidRange {
        /// The key read.
        key: String,
        /// The range asked for.
        range: String,
        /// The value's length.
        len: u64,
    },

    /// A metadata document that has the shape of a value sealed by
    /// [`Encryption`](crate::Encryption) (`nonce ‖ tag ‖ ciphertext`, not JSON) in a store
    /// opened without a key: the dataset is encrypted, and reading it needs its key. Nothing
    /// is returned or exported in that case.
    #[error(
        "invalid Zarr metadata in {key:?}: it is encrypted (nonce, tag, ciphertext); a key is needed to read the dataset"
    )]
    Encrypted {
        /// The metadata key whose value is sealed.
        key: String,
    },

    /// A root block that is neither a HAMT node nor a sharded-store manifest.
    #[error("{root} is neither a HAMT node nor a sharded Zarr manifest: {reason}")]
    UnknownLayout {
        /// The root CID.
        root: hamt::Cid,
        /// What the block is instead.
        reason: String,
    },

    /// A `zarr.json` that is not valid Zarr v3 metadata.
    #[error("invalid Zarr metadata in {key:?}: {reason}")]
    Metadata {
        /// The metadata key.
        key: String,
        /// What was wrong with it.
        reason: String,
    },

    /// A sharded-store root manifest that cannot be used (unknown version, wrong shard
    /// counts, fields of the wrong type).
    #[error("invalid sharded Zarr manifest: {reason}")]
    Manifest {
        /// What is wrong with it.
        reason: String,
    },

    /// A shard block that cannot be used (truncated, wrong length, entries that are not CIDs).
    #[error("shard {shard} of array {array:?} is invalid: {reason}")]
    Shard {
        /// The array's path.
        array: String,
        /// The shard's number.
        shard: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// A write the sharded layout does not allow (an array outside any group, a chunk of an
    /// array with no metadata, a changed chunk shape).
    #[error("{reason}")]
    Layout {
        /// What was refused and why.
        reason: String,
    },

    /// A directory that is not a Zarr v3 store.
    #[error("{path}: not a Zarr v3 store ({reason})")]
    NotZarr {
        /// The directory.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },

    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// True when a block the dataset needs is not in the block store (its root, a node, a
    /// shard, a value): [`Error::Hamt`] with a [`hamt::Error::NotFound`] inside.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Hamt(e) if e.is_not_found())
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

impl From<Error> for StorageError {
    fn from(err: Error) -> Self {
        match err {
            Error::ReadOnly => StorageError::ReadOnly,
            Error::Io { path, source } => StorageError::IOError(std::sync::Arc::new(
                std::io::Error::new(source.kind(), format!("{}: {source}", path.display())),
            )),
            other => StorageError::Other(other.to_string()),
        }
    }
}
