//! The errors the command reports, each with its exit code.

use std::path::PathBuf;

/// What went wrong, in terms a user can act on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Hamt(#[from] hamt::Error),

    #[cfg(feature = "sled")]
    #[error(transparent)]
    Sled(#[from] hamt_store_sled::Error),

    #[cfg(feature = "gateway")]
    #[error(transparent)]
    Gateway(#[from] hamt_gateway::Error),

    #[cfg(feature = "kubo")]
    #[error(transparent)]
    Kubo(#[from] hamt_store_kubo::Error),

    #[cfg(feature = "s3")]
    #[error(transparent)]
    S3(#[from] hamt_store_s3::Error),

    #[cfg(feature = "embedded")]
    #[error(transparent)]
    Embedded(#[from] hamt_store_embedded::Error),

    #[cfg(feature = "zarr")]
    #[error(transparent)]
    Zarr(#[from] hamt_zarr::Error),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("key {key:?} not found")]
    KeyNotFound { key: String },

    #[error("{0}")]
    BadInput(String),

    #[error("unknown store URL {url:?}: expected {expected}")]
    UnknownStore { url: String, expected: String },
}

impl CliError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| CliError::Io { path, source }
    }

    /// 3 for a key or block that is not there, 1 for everything else (clap uses 2 for usage).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::KeyNotFound { .. } => 3,
            CliError::Hamt(e) if e.is_not_found() => 3,
            #[cfg(feature = "zarr")]
            CliError::Zarr(e) if e.is_not_found() => 3,
            _ => 1,
        }
    }
}
