//! The registry's one error type.

/// Why a store URL could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No registered scheme matches the URL.
    #[error("unknown store URL {url:?}: expected {expected}")]
    UnknownScheme {
        /// The URL given.
        url: String,
        /// The forms this build understands, for the message.
        expected: String,
    },

    /// The scheme is known, but this build was made without the feature that brings it.
    #[error("{scheme} stores are not in this build (it lacks the `{feature}` feature)")]
    NotEnabled {
        /// The URL's scheme.
        scheme: &'static str,
        /// The cargo feature that brings it.
        feature: &'static str,
    },

    /// There is no default store: no sled in this build, or no data directory.
    #[error("no default store: {reason}")]
    NoDefault {
        /// Why.
        reason: String,
    },

    /// The backend refused the URL or could not open the store.
    #[error("{source}")]
    Open {
        /// The URL's scheme.
        scheme: &'static str,
        /// The backend's error, in the core's terms (`Backend` wraps the backend's own
        /// error type, which `downcast_ref` recovers).
        source: hamt::Error,
    },
}

impl Error {
    /// True when retrying later may succeed (a store held by another process, a server
    /// that is down).
    pub fn is_temporary(&self) -> bool {
        matches!(self, Error::Open { source, .. } if source.is_temporary())
    }
}
