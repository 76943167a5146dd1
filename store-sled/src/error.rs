//! Errors of opening a sled store.

use std::path::PathBuf;

/// Why a sled store could not be opened or configured.
///
/// Block operations report [`hamt::Error`]; this converts into it as
/// [`hamt::Error::Backend`] with `store = "sled"`, and can be recovered from there with
/// `downcast_ref`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process (or another handle in this one) has the database open.
    #[error("sled database {path} is locked by another process")]
    Locked {
        /// The database directory.
        path: PathBuf,
    },

    /// The database files are damaged or were not written by sled.
    #[error("sled database {path} is corrupt: {reason}")]
    CorruptDatabase {
        /// The database directory.
        path: PathBuf,
        /// What sled reported.
        reason: String,
    },

    /// A URL that is not `sled:PATH`.
    #[error("invalid sled store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Any other failure of sled or the file system.
    #[error("sled database {path}: {source}")]
    Sled {
        /// The database directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
}

impl Error {
    pub(crate) fn from_sled(path: PathBuf, e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) if is_lock_error(&io) => Error::Locked { path },
            sled::Error::Corruption { .. } => Error::CorruptDatabase {
                reason: e.to_string(),
                path,
            },
            sled::Error::Unsupported(reason) => Error::CorruptDatabase { path, reason },
            e => Error::Sled { path, source: e },
        }
    }
}

fn is_lock_error(io: &std::io::Error) -> bool {
    io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock")
}

impl From<Error> for hamt::Error {
    fn from(e: Error) -> Self {
        let temporary = matches!(e, Error::Locked { .. });
        hamt::Error::Backend {
            store: "sled",
            temporary,
            source: Box::new(e),
        }
    }
}
