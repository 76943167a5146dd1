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
    #[error(
        "sled database {path} is locked: another process holds it (for example a running \
         `hamt serve`, or another open handle in this one); stop it or use another store"
    )]
    Locked {
        /// The database directory.
        path: PathBuf,
    },

    /// The database files are damaged (truncated, overwritten, a file missing) or were not
    /// written by sled. Reported at open, or by the operation that meets the damage.
    #[error("sled database {path} is damaged: {reason}")]
    CorruptDatabase {
        /// The database directory.
        path: PathBuf,
        /// What sled reported, or where it panicked on the damaged bytes.
        reason: String,
    },

    /// A URL that is not `sled:PATH[?cache=SIZE]`.
    #[error("invalid sled store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A file of a large block (kept beside the database) could not be read or written.
    #[error("sled store {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
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
            // A read past the end of a file, or of a blob file that is gone: sled's index
            // names bytes the files no longer hold.
            sled::Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::NotFound
                ) =>
            {
                Error::CorruptDatabase {
                    path,
                    reason: format!("a file of it is truncated or missing ({io})"),
                }
            }
            // Not `e.to_string()`: sled's `Display` of `Corruption` ends in the `Debug` form of
            // a backtrace it only records in its own tests, which prints as "backtrace ()".
            sled::Error::Corruption { at, .. } => Error::CorruptDatabase {
                reason: match at {
                    Some(sled::DiskPtr::Inline(offset)) => {
                        format!("damaged data at offset {offset} of its log file")
                    }
                    Some(sled::DiskPtr::Blob(_, blob)) => {
                        format!("blob file blobs/{blob} is damaged or missing")
                    }
                    None => "its log or snapshot does not read back whole".to_owned(),
                },
                path,
            },
            sled::Error::Unsupported(reason) => Error::CorruptDatabase { path, reason },
            e => Error::Sled { path, source: e },
        }
    }

    /// sled panicked on the database's bytes (see `guard.rs`).
    pub(crate) fn from_panic(path: PathBuf, message: &str) -> Self {
        Error::CorruptDatabase {
            path,
            reason: format!("sled could not read it back ({message})"),
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
