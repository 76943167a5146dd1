//! What a store can do beyond blocks, asked of the store itself: `pin` (stores on an IPFS
//! node) and `check` (stores that check their own structures).

use std::sync::Arc;

use clap::Args;
use hamt::BlockStore;
use serde_json::json;

use crate::error::CliError;
use crate::output::Output;
use crate::versions::Versions;

/// `hamt pin`.
#[derive(Args)]
pub(crate) struct PinArgs {
    /// Root CID to pin.
    root: String,
    /// Remove the pin instead.
    #[arg(long, conflicts_with = "from")]
    rm: bool,
    /// Move the pin from this older root.
    #[arg(long)]
    from: Option<String>,
}

pub(crate) async fn pin(
    store: Arc<dyn BlockStore>,
    scheme: &str,
    rev: &Versions<'_>,
    args: PinArgs,
    out: &Output,
) -> Result<(), CliError> {
    let pinning = store.pinning().ok_or_else(|| {
        CliError::BadInput(format!(
            "pinning needs a Kubo store or an embedded IPFS node: {scheme} stores cannot pin"
        ))
    })?;
    // A commit names itself here, so its history is pinned with it.
    let root = rev.dag_root(&args.root).await?;
    let action = if args.rm {
        pinning.unpin(&root).await?;
        "unpinned"
    } else if let Some(old) = args.from {
        pinning
            .pin_update(&rev.dag_root(&old).await?, &root)
            .await?;
        "pin moved to"
    } else {
        pinning.pin(&root).await?;
        "pinned"
    };
    out.line(
        &format!("{action} {root}"),
        &json!({ "root": root.to_string(), "action": action }),
    )
}

pub(crate) async fn check(
    store: Arc<dyn BlockStore>,
    scheme: &str,
    out: &Output,
) -> Result<(), CliError> {
    let checker = store.checker().ok_or_else(|| {
        CliError::BadInput(format!(
            "check needs an S3 store, or another store that keeps structures of its own: \
             {scheme} stores have none to check"
        ))
    })?;
    let report = checker.check().await?;
    let mut text = format!(
        "{} objects, {} blocks, {} bytes: every index has its data",
        report.objects, report.blocks, report.bytes
    );
    for orphan in &report.orphans {
        text.push_str("\norphan (no index names it; unused): ");
        text.push_str(orphan);
    }
    out.line(
        &text,
        &json!({
            "objects": report.objects,
            "blocks": report.blocks,
            "bytes": report.bytes,
            "orphans": report.orphans,
        }),
    )
}
