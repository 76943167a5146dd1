//! The errors the command reports, each with its exit code and a stable kind for `--json`.

use std::path::PathBuf;

use hamt::Cid;

/// Longest key shown in full in a message; longer ones are cut, with their length.
const KEY_SHOWN: usize = 120;

/// What went wrong, in terms a user can act on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Hamt(#[from] hamt::Error),

    #[error(transparent)]
    Store(#[from] hamt_registry::Error),

    #[error(transparent)]
    Versions(#[from] hamt_versions::Error),

    #[cfg(feature = "gateway")]
    #[error(transparent)]
    Gateway(#[from] hamt_gateway::Error),

    #[cfg(feature = "zarr")]
    #[error(transparent)]
    Zarr(#[from] hamt_zarr::Error),

    /// An encrypted dataset opened without its key.
    #[cfg(feature = "zarr")]
    #[error("{0}: pass it with --key-file FILE")]
    KeyRequired(hamt_zarr::Error),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("key {} not found", shown_key(key))]
    KeyNotFound { key: String },

    /// A CAR whose DAG is not all there, in the file or the store.
    #[error(
        "the CAR is incomplete: block {missing} under root {root} is neither in it nor in the \
         store (--allow-partial imports it anyway)"
    )]
    IncompleteCar { root: Cid, missing: Cid },

    #[error("{0}")]
    BadInput(String),
}

/// `key` quoted, cut to [`KEY_SHOWN`] characters.
fn shown_key(key: &str) -> String {
    if key.chars().count() <= KEY_SHOWN {
        format!("{key:?}")
    } else {
        let head: String = key.chars().take(KEY_SHOWN).collect();
        format!("{head:?}… ({} bytes)", key.len())
    }
}

impl CliError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| CliError::Io { path, source }
    }

    fn hamt(&self) -> Option<&hamt::Error> {
        match self {
            CliError::Hamt(e)
            | CliError::Store(hamt_registry::Error::Open { source: e, .. })
            | CliError::Versions(hamt_versions::Error::Hamt(e)) => Some(e),
            #[cfg(feature = "zarr")]
            CliError::Zarr(hamt_zarr::Error::Hamt(e)) => Some(e),
            _ => None,
        }
    }

    /// 3 for a key or block that is not there, 1 for everything else (clap uses 2 for usage).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::KeyNotFound { .. } | CliError::IncompleteCar { .. } => 3,
            // A revision that names nothing stays a usage error (1), as a bad CID always was.
            CliError::Versions(hamt_versions::Error::RefNotFound { .. }) => 3,
            _ if self.hamt().is_some_and(hamt::Error::is_not_found) => 3,
            #[cfg(feature = "zarr")]
            CliError::Zarr(e) if e.is_not_found() => 3,
            _ => 1,
        }
    }

    /// A short, stable name for what went wrong, for scripts reading `--json` errors.
    pub(crate) fn kind(&self) -> &'static str {
        if let Some(e) = self.hamt() {
            return match e {
                hamt::Error::NotFound { .. } => "block_not_found",
                hamt::Error::Corrupt { .. } => "corrupt_block",
                hamt::Error::Decode { .. } => "undecodable",
                hamt::Error::InvalidCid { .. } => "invalid_cid",
                hamt::Error::Timeout { .. } => "timeout",
                hamt::Error::Unauthorized { .. } => "unauthorized",
                hamt::Error::Offline { .. } => "offline",
                hamt::Error::NotSupported { .. } => "not_supported",
                e if e.is_temporary() => "unavailable",
                _ => "store_error",
            };
        }
        match self {
            CliError::KeyNotFound { .. } => "key_not_found",
            CliError::IncompleteCar { .. } => "incomplete_car",
            CliError::Store(_) => "bad_store_url",
            CliError::Io { .. } => "io",
            CliError::BadInput(_) => "bad_input",
            CliError::Versions(e) => match e {
                hamt_versions::Error::RefConflict { .. } => "ref_conflict",
                hamt_versions::Error::TagExists { .. } => "tag_exists",
                hamt_versions::Error::MergeConflict { .. } => "merge_conflict",
                hamt_versions::Error::RefNotFound { .. } => "ref_not_found",
                hamt_versions::Error::UnknownRevision { .. } => "unknown_revision",
                hamt_versions::Error::NotACommit { .. } => "not_a_commit",
                hamt_versions::Error::InvalidRefName { .. } => "invalid_ref_name",
                hamt_versions::Error::GcRefused(_) => "gc_refused",
                _ => "versions_error",
            },
            #[cfg(feature = "gateway")]
            CliError::Gateway(_) => "gateway",
            #[cfg(feature = "zarr")]
            CliError::Zarr(e) if e.is_not_found() => "block_not_found",
            #[cfg(feature = "zarr")]
            CliError::KeyRequired(_) => "key_required",
            #[cfg(feature = "zarr")]
            CliError::Zarr(_) => "zarr",
            CliError::Hamt(_) => "store_error",
        }
    }

    /// The error as `--json` prints it on standard error.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "kind": self.kind(),
                "message": self.to_string(),
                "exit_code": self.exit_code(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_cut_in_messages() {
        let short = CliError::KeyNotFound { key: "a/b".into() };
        assert_eq!(short.to_string(), "key \"a/b\" not found");
        let long = CliError::KeyNotFound {
            key: "k".repeat(100_000),
        };
        let text = long.to_string();
        assert!(text.len() < 200, "{}", text.len());
        assert!(text.contains("(100000 bytes)"), "{text}");
        assert_eq!(long.exit_code(), 3);
        assert_eq!(long.to_json()["error"]["kind"], "key_not_found");
    }
}
