//! The one error type of this crate.

use std::path::PathBuf;

/// What can go wrong opening or running the embedded node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process (or another store in this one) has the repo open.
    #[error("the IPFS repo at {path} is locked by another process")]
    Locked {
        /// The repo directory.
        path: PathBuf,
    },

    /// A store URL that cannot be used.
    #[error("invalid embedded IPFS store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A listen address or peer address that does not parse.
    #[error("invalid multiaddress {addr:?}: {reason}")]
    InvalidAddress {
        /// The address given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The node failed to start or to carry out an operation.
    #[error("embedded IPFS node: {0}")]
    Node(String),

    /// The repo directory cannot be created.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl From<Error> for hamt::Error {
    fn from(err: Error) -> Self {
        hamt::Error::Backend {
            store: "ipfs-embedded",
            temporary: false,
            source: Box::new(err),
        }
    }
}
