//! How results reach standard output: text or one JSON value, and roots printed only once
//! the store has made them durable.

use std::io::Write as _;

use hamt::{BlockStore, Cid};
use serde_json::json;

use crate::error::CliError;

/// Prints results as text or JSON.
pub(crate) struct Output {
    pub(crate) json: bool,
}

impl Output {
    /// Prints `value` as one line of JSON.
    pub(crate) fn value(value: &serde_json::Value) -> Result<(), CliError> {
        println_checked(&value.to_string())
    }

    /// Prints `text`, or `value` under `--json`.
    pub(crate) fn line(&self, text: &str, value: &serde_json::Value) -> Result<(), CliError> {
        if self.json {
            Self::value(value)
        } else {
            println_checked(text)
        }
    }

    /// [`line`](Self::line) for a result that names roots: the store makes every block
    /// written so far durable first, so a root that reaches the user survives a crash or a
    /// kill right after it is printed.
    pub(crate) async fn durable_line(
        &self,
        store: &dyn BlockStore,
        text: &str,
        value: &serde_json::Value,
    ) -> Result<(), CliError> {
        store.sync().await?;
        self.line(text, value)
    }

    /// Prints a new root once it is durable.
    pub(crate) async fn root(&self, store: &dyn BlockStore, root: Cid) -> Result<(), CliError> {
        self.durable_line(
            store,
            &root.to_string(),
            &json!({ "root": root.to_string() }),
        )
        .await
    }
}

/// Writes `text` to standard output, failing on a closed pipe rather than panicking.
pub(crate) fn print_checked(text: &str) -> Result<(), CliError> {
    write!(std::io::stdout().lock(), "{text}").map_err(CliError::io("<stdout>"))
}

/// [`print_checked`] with a newline.
pub(crate) fn println_checked(text: &str) -> Result<(), CliError> {
    writeln!(std::io::stdout().lock(), "{text}").map_err(CliError::io("<stdout>"))
}
