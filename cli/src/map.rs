//! Commands on one map: `get`, `ls`, `put`, `rm`, `new`, `stat`, `diff`.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use futures::TryStreamExt as _;
use hamt::{BlockStore, Change, Hamt, HamtReader};
use serde_json::json;

use crate::error::CliError;
use crate::json;
use crate::output::{Output, println_checked};
use crate::versions::Versions;

/// `hamt get`.
#[derive(Args)]
pub(crate) struct GetArgs {
    /// Root CID of the HAMT.
    root: String,
    /// The key.
    key: String,
    /// Decode the value as DAG-CBOR and print it as JSON.
    #[arg(long)]
    cbor_json: bool,
}

/// `hamt put`.
#[derive(Args)]
pub(crate) struct PutArgs {
    /// Root CID of the HAMT.
    root: String,
    /// The key.
    key: String,
    /// The value; `-` reads standard input.
    #[arg(required_unless_present = "file")]
    value: Option<String>,
    /// Read the value from this file.
    #[arg(long, conflicts_with = "value")]
    file: Option<PathBuf>,
}

/// A command that names a root and a key (`rm`).
#[derive(Args)]
pub(crate) struct KeyArgs {
    /// Root CID of the HAMT.
    root: String,
    /// The key.
    key: String,
}

/// A command that names one root (`ls`, `stat`).
#[derive(Args)]
pub(crate) struct RootArgs {
    /// Root CID of the HAMT.
    pub(crate) root: String,
}

/// `hamt diff`.
#[derive(Args)]
pub(crate) struct DiffArgs {
    /// The older root.
    root1: String,
    /// The newer root.
    root2: String,
}

pub(crate) async fn get(
    store: Arc<dyn BlockStore>,
    rev: &Versions<'_>,
    args: GetArgs,
) -> Result<(), CliError> {
    let GetArgs {
        root,
        key,
        cbor_json,
    } = args;
    let reader = HamtReader::open(store, rev.root(&root).await?).await?;
    let value = reader
        .get(&key)
        .await?
        .ok_or_else(|| CliError::KeyNotFound { key: key.clone() })?;
    if cbor_json {
        let ipld: ipld_core::ipld::Ipld = serde_ipld_dagcbor::from_slice(&value)
            .map_err(|e| CliError::BadInput(format!("value of {key:?} is not DAG-CBOR: {e}")))?;
        return println_checked(&json::ipld_to_json(&ipld).to_string());
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&value)
        .and_then(|()| stdout.flush())
        .map_err(CliError::io("<stdout>"))
}

pub(crate) async fn ls(
    store: Arc<dyn BlockStore>,
    rev: &Versions<'_>,
    args: RootArgs,
    out: &Output,
) -> Result<(), CliError> {
    let mut keys = keys_of(store, rev.root(&args.root).await?).await?;
    keys.sort();
    if out.json {
        return Output::value(&json!(keys));
    }
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    for key in keys {
        writeln!(stdout, "{key}").map_err(CliError::io("<stdout>"))?;
    }
    stdout.flush().map_err(CliError::io("<stdout>"))
}

/// The keys of a HAMT, or of a sharded Zarr dataset's root.
async fn keys_of(store: Arc<dyn BlockStore>, root: hamt::Cid) -> Result<Vec<String>, CliError> {
    #[cfg(feature = "zarr")]
    if let Some(dataset) = crate::sharded_dataset(&store, root).await? {
        return Ok(dataset.keys().await?);
    }
    let reader = HamtReader::open(store, root).await?;
    Ok(reader.keys().try_collect().await?)
}

pub(crate) async fn put(
    store: Arc<dyn BlockStore>,
    rev: &Versions<'_>,
    args: PutArgs,
    out: &Output,
) -> Result<(), CliError> {
    let bytes = match (args.value.as_deref(), args.file) {
        (_, Some(path)) => tokio::fs::read(&path).await.map_err(CliError::io(path))?,
        (Some("-"), None) => {
            let mut buf = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut buf)
                .await
                .map_err(CliError::io("<stdin>"))?;
            buf
        }
        (Some(v), None) => v.as_bytes().to_vec(),
        (None, None) => return Err(CliError::BadInput("no value given".into())),
    };
    let mut map = Hamt::open(store.clone(), rev.root(&args.root).await?).await?;
    map.insert(&args.key, bytes).await?;
    out.root(store.as_ref(), map.flush().await?).await
}

pub(crate) async fn rm(
    store: Arc<dyn BlockStore>,
    rev: &Versions<'_>,
    args: KeyArgs,
    out: &Output,
) -> Result<(), CliError> {
    let mut map = Hamt::open(store.clone(), rev.root(&args.root).await?).await?;
    if map.remove(&args.key).await?.is_none() {
        return Err(CliError::KeyNotFound { key: args.key });
    }
    out.root(store.as_ref(), map.flush().await?).await
}

pub(crate) async fn new(store: Arc<dyn BlockStore>, out: &Output) -> Result<(), CliError> {
    let root = Hamt::new(store.clone()).flush().await?;
    out.root(store.as_ref(), root).await
}

pub(crate) async fn stat(
    store: Arc<dyn BlockStore>,
    rev: &Versions<'_>,
    args: RootArgs,
    out: &Output,
) -> Result<(), CliError> {
    let root = rev.root(&args.root).await?;
    let reader = HamtReader::open(store.clone(), root).await?;
    let stats = reader.stats().await?;
    // Sizes from the store's index where it has one: no value is read.
    let value_bytes: u64 = reader
        .pointers()
        .map_ok(|(_, value)| {
            let store = store.clone();
            async move {
                match hamt::inline_data(&value) {
                    Some(data) => Ok(data.len() as u64),
                    None => store.block_size(&value).await,
                }
            }
        })
        .try_buffer_unordered(32)
        .try_fold(0, |acc, n| async move { Ok(acc + n) })
        .await?;
    let text = format!(
        "root        {root}\nkeys        {}\nnodes       {}\nnode bytes  {}\nvalue bytes {}\ndepth       {}\nmax bucket  {}",
        stats.keys, stats.nodes, stats.node_bytes, value_bytes, stats.depth, stats.max_bucket
    );
    out.line(
        &text,
        &json!({
            "root": root.to_string(),
            "keys": stats.keys,
            "nodes": stats.nodes,
            "node_bytes": stats.node_bytes,
            "value_bytes": value_bytes,
            "depth": stats.depth,
            "max_bucket": stats.max_bucket,
        }),
    )
}

pub(crate) async fn diff(
    store: Arc<dyn BlockStore>,
    rev: &Versions<'_>,
    args: DiffArgs,
    out: &Output,
) -> Result<(), CliError> {
    let (a, b) = (rev.root(&args.root1).await?, rev.root(&args.root2).await?);
    // Fail on a missing root up front rather than midway.
    HamtReader::open(store.clone(), a).await?;
    HamtReader::open(store.clone(), b).await?;
    let mut changes: Vec<Change> = hamt::diff(store, a, b).try_collect().await?;
    changes.sort_by(|x, y| x.key().cmp(y.key()));
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    for change in changes {
        let line = if out.json {
            match &change {
                Change::Added { key, value } => json!({"op": "added", "key": key, "value": value.to_string()}),
                Change::Removed { key, value } => json!({"op": "removed", "key": key, "value": value.to_string()}),
                Change::Modified { key, old, new } => json!({"op": "modified", "key": key, "old": old.to_string(), "new": new.to_string()}),
            }
            .to_string()
        } else {
            let sign = match change {
                Change::Added { .. } => '+',
                Change::Removed { .. } => '-',
                Change::Modified { .. } => '~',
            };
            format!("{sign} {}", change.key())
        };
        writeln!(stdout, "{line}").map_err(CliError::io("<stdout>"))?;
    }
    stdout.flush().map_err(CliError::io("<stdout>"))
}
