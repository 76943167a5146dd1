//! CAR files out and in: `export-car ROOT FILE`, `import-car FILE`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use hamt::{BlockStore, Cid};
use serde_json::json;
use tokio_util::compat::{TokioAsyncReadCompatExt as _, TokioAsyncWriteCompatExt as _};

use crate::error::CliError;
use crate::output::Output;
use crate::versions::Versions;

/// `hamt export-car`.
#[derive(Args)]
pub(crate) struct ExportCarArgs {
    /// Root CID of the HAMT.
    root: String,
    /// The CAR file to write.
    file: PathBuf,
}

/// `hamt import-car`.
#[derive(Args)]
pub(crate) struct ImportCarArgs {
    /// The CAR file to read.
    file: PathBuf,
    /// Accept a CAR whose roots are not whole (blocks under them missing from both the file
    /// and the store): by default that is an error, exit code 3.
    #[arg(long)]
    allow_partial: bool,
}

pub(crate) async fn export_car(
    store: Arc<dyn BlockStore>,
    rev: &Versions<'_>,
    args: ExportCarArgs,
    out: &Output,
) -> Result<(), CliError> {
    let ExportCarArgs { root, file } = args;
    // A commit names itself here, so its history comes along.
    let root = rev.dag_root(&root).await?;
    // A missing root fails here, before the file exists.
    store.get(&root).await?;
    let f = tokio::fs::File::create(&file)
        .await
        .map_err(CliError::io(&file))?;
    let writer = tokio::io::BufWriter::new(f).compat_write();
    let exported = hamt::car::export_car(&store, root, writer).await;
    let blocks = match exported {
        Ok(blocks) => blocks,
        Err(e) => {
            // A CAR cut short must not be left to pass for a whole one.
            let _ = tokio::fs::remove_file(&file).await;
            return Err(e.into());
        }
    };
    out.line(
        &format!("{blocks} blocks written to {}", file.display()),
        &json!({"root": root.to_string(), "blocks": blocks, "file": file}),
    )
}

pub(crate) async fn import_car(
    store: Arc<dyn BlockStore>,
    args: ImportCarArgs,
    out: &Output,
) -> Result<(), CliError> {
    let ImportCarArgs {
        file,
        allow_partial,
    } = args;
    // A store with a faster way (S3: the file becomes one pack) takes the whole file.
    let (roots, blocks, location) = if let Some(importer) = store.car_importer() {
        let imported = importer.import_car_file(&file).await?;
        (imported.roots, imported.blocks, imported.location)
    } else {
        let (roots, blocks) = import_blocks(store.as_ref(), &file).await?;
        (roots, blocks, None)
    };
    if !allow_partial {
        if roots.is_empty() {
            return Err(CliError::BadInput(format!(
                "{} names no root, so nothing says what it holds (--allow-partial imports it \
                 anyway)",
                file.display()
            )));
        }
        for root in &roots {
            if let Some(missing) = hamt::dag::first_missing(store.as_ref(), [*root]).await? {
                return Err(CliError::IncompleteCar {
                    root: *root,
                    missing,
                });
            }
        }
    }
    let text = roots
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let roots: Vec<String> = roots.iter().map(ToString::to_string).collect();
    out.durable_line(
        store.as_ref(),
        &text,
        &json!({"roots": roots, "blocks": blocks, "location": location}),
    )
    .await
}

/// Streams the CAR's blocks into `store`, each verified, in batches.
async fn import_blocks(
    store: &dyn BlockStore,
    file: &std::path::Path,
) -> Result<(Vec<Cid>, u64), CliError> {
    let f = tokio::fs::File::open(file)
        .await
        .map_err(CliError::io(file))?;
    let mut car = hamt::car::CarReader::new(tokio::io::BufReader::new(f).compat()).await?;
    let roots = car.roots().to_vec();
    let mut batch = Vec::new();
    let mut count = 0u64;
    while let Some(block) = car.next_block().await? {
        batch.push(block);
        count += 1;
        if batch.len() >= 1024 {
            store.put_many_keyed(std::mem::take(&mut batch)).await?;
        }
    }
    store.put_many_keyed(batch).await?;
    Ok((roots, count))
}
