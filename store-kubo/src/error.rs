//! Errors of the Kubo store.

use hamt::Cid;

/// What went wrong talking to a Kubo node.
///
/// Block operations report [`hamt::Error`]; this converts into it (timeouts become
/// [`hamt::Error::Timeout`], refused credentials [`hamt::Error::Unauthorized`], the rest
/// [`hamt::Error::Backend`] with `store = "kubo"` and `temporary` set for failures worth a
/// retry) and can be recovered from there with `downcast_ref`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A URL that is not `kubo+http://HOST:PORT[?gateway=URL…]`, or a bad option in it.
    #[error("invalid Kubo store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given (credentials removed).
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The request did not complete: connection refused, reset, timed out.
    #[error("{endpoint}: {source}")]
    Http {
        /// The RPC endpoint or gateway path.
        endpoint: String,
        /// reqwest's error.
        source: reqwest::Error,
    },

    /// The node answered with an error status.
    #[error("{endpoint}: HTTP {status}: {message}")]
    Status {
        /// The RPC endpoint or gateway path.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// Kubo's error message, or the start of the body.
        message: String,
    },

    /// The node named a block differently from the CID computed here: its hashing or codec
    /// settings differ from what was asked, and storing on would corrupt the tree.
    #[error("the node stored the block as {returned}, but its CID is {expected}")]
    CidMismatch {
        /// The CID computed locally.
        expected: Cid,
        /// The CID the node returned.
        returned: Cid,
    },

    /// The node's answer could not be understood.
    #[error("{endpoint}: unexpected response: {reason}")]
    BadResponse {
        /// The RPC endpoint.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// True when trying the same request again may succeed.
    pub fn is_temporary(&self) -> bool {
        match self {
            // A body cut off on the way (`is_body`, or `is_decode` wrapping it) is as worth
            // a retry as a connection that failed before the answer began.
            Error::Http { source, .. } => {
                source.is_timeout()
                    || source.is_connect()
                    || source.is_request()
                    || source.is_body()
                    || source.is_decode()
            }
            Error::Status { status, .. } => matches!(status, 408 | 429 | 502 | 503 | 504),
            _ => false,
        }
    }
}

impl From<Error> for hamt::Error {
    fn from(e: Error) -> Self {
        match &e {
            Error::Http { source, .. } if source.is_timeout() => {
                hamt::Error::Timeout { store: "kubo" }
            }
            Error::Status {
                status: 401 | 403,
                message,
                ..
            } => hamt::Error::Unauthorized {
                store: "kubo",
                reason: message.clone(),
            },
            _ => hamt::Error::Backend {
                store: "kubo",
                temporary: e.is_temporary(),
                source: Box::new(e),
            },
        }
    }
}
