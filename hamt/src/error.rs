//! The one error type of this crate.

use cid::Cid;

/// A boxed error from a backend, kept as the `source` of [`Error::Backend`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a block store or a HAMT.
///
/// Backends map their own failures into these variants so that callers can act on the
/// meaning (`NotFound`, `Corrupt`, a temporary backend failure) without knowing the backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store does not hold a block with this CID.
    #[error("block {cid} not found")]
    NotFound {
        /// The CID that was asked for.
        cid: Cid,
    },

    /// The store returned (or was given) bytes that do not hash to the CID.
    #[error("block {cid} is corrupt: its bytes do not hash to its CID")]
    Corrupt {
        /// The CID whose bytes failed verification.
        cid: Cid,
    },

    /// A block or value could not be decoded.
    #[error("cannot decode {what}{}: {reason}", cid.map(|c| format!(" {c}")).unwrap_or_default())]
    Decode {
        /// What was being decoded (`"HAMT node"`, `"DAG-CBOR value"`, …).
        what: &'static str,
        /// The block it came from, when known.
        cid: Option<Cid>,
        /// What was wrong with it.
        reason: String,
    },

    /// A value could not be encoded as DAG-CBOR.
    #[error("cannot encode value as DAG-CBOR: {reason}")]
    Encode {
        /// What the encoder reported.
        reason: String,
    },

    /// A CID uses a multihash this crate cannot compute, so its bytes cannot be verified.
    #[error("unsupported multihash code {code:#x}")]
    UnsupportedHash {
        /// The multihash code.
        code: u64,
    },

    /// A CID names a codec this crate does not handle here.
    #[error("unsupported codec {code:#x}")]
    UnsupportedCodec {
        /// The multicodec code.
        code: u64,
    },

    /// A string is not a valid CID.
    #[error("invalid CID {input:?}: {reason}")]
    InvalidCid {
        /// The text that was given.
        input: String,
        /// Why it was rejected.
        reason: String,
    },

    /// More keys share a hash prefix than the tree can separate: the whole 256-bit key hash
    /// is used up with more than `max_bucket_size` keys still colliding.
    #[error("hash of key {key:?} exhausted: too many keys share the same hash")]
    HashExhausted {
        /// The key that could not be placed.
        key: String,
    },

    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The block is not cached locally and the store is in offline mode.
    #[error("block {cid} is not available offline")]
    Offline {
        /// The CID that was asked for.
        cid: Cid,
    },

    /// The operation is not supported by this store.
    #[error("{store} does not support {operation}")]
    NotSupported {
        /// The store's name.
        store: &'static str,
        /// What was attempted.
        operation: &'static str,
    },

    /// A backend did not answer in time.
    #[error("{store} timed out")]
    Timeout {
        /// The store's name.
        store: &'static str,
    },

    /// A backend refused the credentials (or their absence).
    #[error("{store} refused access: {reason}")]
    Unauthorized {
        /// The store's name.
        store: &'static str,
        /// What the backend said.
        reason: String,
    },

    /// A failure inside a backend (I/O, network, database).
    #[error("{store} backend error: {source}")]
    Backend {
        /// The store's name (`"sled"`, `"kubo"`, …).
        store: &'static str,
        /// Whether retrying the same operation later may succeed.
        temporary: bool,
        /// The underlying error.
        source: BoxError,
    },
}

impl Error {
    /// True when a block was looked up and is not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True when retrying later may succeed (timeouts, overloaded servers).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            Error::Timeout { .. }
                | Error::Backend {
                    temporary: true,
                    ..
                }
        )
    }

    /// Wraps a backend error that retrying will not fix.
    pub fn backend(store: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            store,
            temporary: false,
            source: source.into(),
        }
    }

    pub(crate) fn decode(
        what: &'static str,
        cid: Option<Cid>,
        reason: impl std::fmt::Display,
    ) -> Self {
        Error::Decode {
            what,
            cid,
            reason: reason.to_string(),
        }
    }
}
