//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong in the S3 store beyond the [`hamt::Error`]s it returns
/// through [`BlockStore`](hamt::BlockStore).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object store failed (network, permissions, a missing bucket, …).
    #[error("S3: {0}")]
    ObjectStore(#[from] object_store::Error),

    /// A store URL that cannot be used.
    #[error("invalid S3 store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given (credentials are never part of it).
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No credentials to sign requests with, found before any request is made (see
    /// [`Credentials`](crate::Credentials)).
    #[error("no S3 credentials: {reason}")]
    MissingCredentials {
        /// What is missing and how to provide it.
        reason: String,
    },

    /// An index object that is truncated, altered or not an index.
    #[error("index object {path} is corrupt: {reason}")]
    CorruptIndex {
        /// The object's path in the bucket.
        path: String,
        /// What failed to check out.
        reason: String,
    },

    /// A pack object shorter than its index says.
    #[error("pack {path} is {actual} bytes, its index needs {needed}")]
    TruncatedPack {
        /// The pack's path in the bucket.
        path: String,
        /// Its size.
        actual: u64,
        /// The end of the furthest block its index names.
        needed: u64,
    },

    /// A ranged read answered with fewer (or more) bytes than asked for: a body cut short
    /// on the way. Worth retrying.
    #[error("{path}: a ranged read returned {got} bytes instead of {expected}")]
    ShortRead {
        /// The object's path in the bucket.
        path: String,
        /// The length of the range asked for.
        expected: u64,
        /// The bytes that came.
        got: u64,
    },

    /// A CAR file could not be read or is malformed.
    #[error(transparent)]
    Hamt(#[from] hamt::Error),

    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// True when retrying later may succeed (a timeout, a throttled or failed request).
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::ObjectStore(e) => !matches!(
                e,
                object_store::Error::NotFound { .. }
                    | object_store::Error::InvalidPath { .. }
                    | object_store::Error::NotSupported { .. }
                    | object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }
                    | object_store::Error::NotImplemented { .. }
                    | object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
                    | object_store::Error::UnknownConfigurationKey { .. }
            ),
            Error::ShortRead { .. } => true,
            _ => false,
        }
    }
}

impl From<Error> for hamt::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Hamt(e) => e,
            Error::MissingCredentials { .. } => hamt::Error::Unauthorized {
                store: "s3",
                reason: err.to_string(),
            },
            other => hamt::Error::Backend {
                store: "s3",
                temporary: other.is_temporary(),
                source: Box::new(other),
            },
        }
    }
}
