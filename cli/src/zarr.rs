//! `hamt zarr …`: Zarr v3 datasets in py-hamt's `ZarrHAMTStore` layout, and reading those in
//! its sharded layout too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use hamt::{BlockStore, Cid};
use hamt_zarr::{Dataset, DatasetInfo, Encryption, EncryptionKey, HamtStore, Layout, NodeInfo};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::Output;
use crate::error::CliError;
use crate::versions::Versions;

/// The `zarr` subcommands.
#[derive(Subcommand)]
pub(crate) enum ZarrCommand {
    /// Store a Zarr v3 directory store as a HAMT (key = path relative to DIR); print the
    /// root CID.
    Import {
        /// The Zarr v3 directory (with a `zarr.json` at its top).
        dir: PathBuf,
        #[command(flatten)]
        crypt: Crypt,
    },
    /// Write the dataset at ROOT (a HAMT or a sharded root) as a Zarr v3 directory store
    /// under DIR.
    Export {
        /// Root CID of the dataset.
        root: String,
        /// Destination directory (created if missing).
        dir: PathBuf,
        #[command(flatten)]
        crypt: Crypt,
    },
    /// Convert the HAMT dataset at ROOT into py-hamt's sharded layout (`sharded_zarr_v2`),
    /// reusing every chunk block; print the new root (the one py-hamt's converter gives).
    Shard {
        /// Root CID of the HAMT dataset.
        root: String,
        /// Chunks per shard (py-hamt's converter defaults to 6250).
        #[arg(long, default_value_t = 6250)]
        chunks_per_shard: u64,
    },
    /// List the groups and arrays of the dataset at ROOT (a HAMT or a sharded root): shapes,
    /// chunk grid, data type.
    Info {
        /// Root CID of the dataset.
        root: String,
        #[command(flatten)]
        crypt: Crypt,
    },
}

/// Encryption compatible with py-hamt's `SimpleEncryptedZarrHAMTStore`.
#[derive(Args)]
pub(crate) struct Crypt {
    /// Encrypt (or decrypt) values with the 32-byte key in FILE (raw, or 64 hex digits).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// The associated data py-hamt calls the header.
    #[arg(long, default_value = "", requires = "key_file")]
    header: String,
    /// Leave keys under this prefix unencrypted (repeatable), e.g. `public/`.
    #[arg(long, value_name = "PREFIX", requires = "key_file")]
    keep_clear: Vec<String>,
}

impl Crypt {
    fn encryption(&self) -> Result<Option<Encryption>, CliError> {
        let Some(path) = &self.key_file else {
            return Ok(None);
        };
        let raw = std::fs::read(path).map_err(CliError::io(path))?;
        let text = String::from_utf8_lossy(&raw);
        let hex = text.trim();
        let bytes = if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| CliError::BadInput(format!("{}: bad hex key", path.display())))?
        } else {
            raw.clone()
        };
        let key = EncryptionKey::from_slice(&bytes)
            .map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))?;
        let mut enc = Encryption::new(key, self.header.clone().into_bytes());
        for prefix in &self.keep_clear {
            enc = enc.keep_clear(prefix.clone());
        }
        Ok(Some(enc))
    }

    /// A new, empty HAMT store to import into.
    async fn create(&self, store: Arc<dyn BlockStore>) -> Result<HamtStore, CliError> {
        let mut builder = HamtStore::builder(store);
        if let Some(enc) = self.encryption()? {
            builder = builder.encryption(enc);
        }
        Ok(builder.build().await?)
    }

    /// The dataset at `root`, in the layout its root block has.
    async fn open(&self, store: Arc<dyn BlockStore>, root: Cid) -> Result<Dataset, CliError> {
        let mut builder = Dataset::builder(store, root);
        if let Some(enc) = self.encryption()? {
            builder = builder.encryption(enc);
        }
        builder.build().await.map_err(zarr_error)
    }
}

/// The error of a `hamt_zarr` call, with the flag to pass when a key is needed.
fn zarr_error(err: hamt_zarr::Error) -> CliError {
    match err {
        hamt_zarr::Error::Encrypted { .. } => CliError::KeyRequired(err),
        other => CliError::Zarr(other),
    }
}

fn bar(total: Option<u64>, verb: &str) -> ProgressBar {
    let bar = total.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
    let template = if total.is_some() {
        format!("{{spinner}} {verb} {{bytes}}/{{total_bytes}} [{{elapsed}}] {{wide_bar}} {{eta}}")
    } else {
        format!("{{spinner}} {verb} {{bytes}} [{{elapsed}}] {{binary_bytes_per_sec}}")
    };
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

pub(crate) async fn run(
    command: ZarrCommand,
    store: Arc<dyn BlockStore>,
    rev: &Versions<'_>,
    out: &Output,
) -> Result<(), CliError> {
    match command {
        ZarrCommand::Import { dir, crypt } => import(store, &dir, &crypt, out).await,
        ZarrCommand::Export { root, dir, crypt } => {
            let dataset = crypt.open(store, rev.root(&root).await?).await?;
            let progress = bar(None, "exporting");
            let copied = hamt_zarr::export_dir(&dataset, &dir, &|n| progress.inc(n))
                .await
                .map_err(zarr_error)?;
            progress.finish_and_clear();
            out.line(
                &format!(
                    "{} keys ({} bytes) written to {}",
                    copied.keys,
                    copied.bytes,
                    dir.display()
                ),
                &json!({"root": root, "keys": copied.keys, "bytes": copied.bytes, "dir": dir}),
            )
        }
        ZarrCommand::Shard {
            root,
            chunks_per_shard,
        } => {
            let from = rev.root(&root).await?;
            if Layout::detect(&store, &from).await? == Layout::Sharded {
                return Err(CliError::BadInput(format!(
                    "{root} is already in the sharded layout"
                )));
            }
            let sharded = hamt_zarr::hamt_to_sharded(store.clone(), from, chunks_per_shard).await?;
            out.durable_line(
                store.as_ref(),
                &sharded.to_string(),
                &json!({"root": sharded.to_string(), "from": root, "chunks_per_shard": chunks_per_shard}),
            )
            .await
        }
        ZarrCommand::Info { root, crypt } => {
            let dataset = crypt.open(store, rev.root(&root).await?).await?;
            let info = hamt_zarr::dataset_info(&dataset)
                .await
                .map_err(zarr_error)?;
            match dataset.as_sharded() {
                Some(sharded) => sharded_info(sharded, &info, &root, out),
                None if out.json => Output::value(&json!({
                    "root": root,
                    "layout": "hamt",
                    "nodes": nodes_json(&info),
                })),
                None => crate::print_checked(&info.to_string()),
            }
        }
    }
}

/// The groups and arrays of `info` as JSON.
fn nodes_json(info: &DatasetInfo) -> Vec<serde_json::Value> {
    info.nodes.iter().map(node_json).collect()
}

fn node_json(node: &NodeInfo) -> serde_json::Value {
    match &node.array {
        None => json!({"path": node.path, "node_type": "group"}),
        Some(a) => json!({
            "path": node.path,
            "node_type": "array",
            "shape": a.shape,
            "data_type": a.data_type,
            "chunk_shape": a.chunk_shape,
            "inner_chunk_shape": a.inner_chunk_shape,
            "codecs": a.codecs,
            "dimension_names": a.dimension_names,
            "grid_chunks": a.grid_chunks,
            "stored_chunks": a.stored_chunks,
        }),
    }
}

/// `hamt zarr info` of a sharded root: its arrays as the manifest records them, then its
/// groups and arrays as their `zarr.json` documents describe them.
fn sharded_info(
    sharded: &hamt_zarr::ShardedStore,
    info: &DatasetInfo,
    root: &str,
    out: &Output,
) -> Result<(), CliError> {
    let arrays = sharded.arrays();
    if out.json {
        let arrays: Vec<_> = arrays
            .iter()
            .map(|(path, shape, chunks, cps)| {
                json!({"path": path, "shape": shape, "chunk_shape": chunks, "chunks_per_shard": cps})
            })
            .collect();
        return Output::value(&json!({
            "root": root,
            "layout": "sharded",
            "arrays": arrays,
            "nodes": nodes_json(info),
        }));
    }
    let dims = |v: &[u64]| format!("{v:?}").replace('[', "(").replace(']', ")");
    let mut lines = vec![format!("sharded ({:?} manifest)", sharded.version())];
    for (path, shape, chunks, cps) in arrays {
        lines.push(format!(
            "{path}  array {}  chunks {}  {cps} chunks per shard",
            dims(&shape),
            dims(&chunks)
        ));
    }
    let text = lines.join("\n") + "\n" + &info.to_string();
    crate::print_checked(&text)
}

async fn import(
    store: Arc<dyn BlockStore>,
    dir: &Path,
    crypt: &Crypt,
    out: &Output,
) -> Result<(), CliError> {
    let total: u64 = hamt_zarr::scan_dir(dir)?.iter().map(|f| f.2).sum();
    let zarr = crypt.create(store.clone()).await?;
    let progress = bar(Some(total), "importing");
    let copied = hamt_zarr::import_dir(&zarr, dir, &|n| progress.inc(n)).await?;
    let root = zarr.flush().await?;
    progress.finish_and_clear();
    out.durable_line(
        store.as_ref(),
        &root.to_string(),
        &json!({"root": root.to_string(), "keys": copied.keys, "bytes": copied.bytes}),
    )
    .await
}
