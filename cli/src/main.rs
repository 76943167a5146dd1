//! The `hamt` command: HAMTs in py-hamt's format over any block store.
//!
//! The store is named by `--store URL` or `HAMT_STORE`; without either it is a sled database
//! in the user's data directory, so everything works with no daemon. Exit codes: 0 success,
//! 1 error, 2 bad usage, 3 a key or block that is not there.

mod error;
mod json;
mod store;
#[cfg(feature = "zarr")]
mod zarr;

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use futures::{StreamExt as _, TryStreamExt as _};
use hamt::{BlockStore, Change, Cid, Config, Hamt, HamtReader, parse_cid};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio_util::compat::{TokioAsyncReadCompatExt as _, TokioAsyncWriteCompatExt as _};

use crate::error::CliError;
use crate::store::OpenStore;

#[derive(Parser)]
#[command(
    name = "hamt",
    version,
    about = "HAMTs in py-hamt's format over content-addressed blocks"
)]
struct Cli {
    /// Block store URL: `sled:PATH` or `mem:`. Default: a sled database in the user's data
    /// directory.
    #[arg(long, global = true, env = "HAMT_STORE")]
    store: Option<String>,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store every file under DIR as one HAMT (key = path relative to DIR with `/`
    /// separators, value = the file's bytes); print the root CID.
    Import {
        /// The directory to import.
        dir: PathBuf,
        /// Most keys per bucket (py-hamt's `max_bucket_size`).
        #[arg(long, default_value_t = 4)]
        bucket_size: usize,
    },
    /// Write the value of KEY to standard output.
    Get {
        /// Root CID of the HAMT.
        root: String,
        /// The key.
        key: String,
        /// Decode the value as DAG-CBOR and print it as JSON.
        #[arg(long)]
        cbor_json: bool,
    },
    /// List the keys, one per line.
    Ls {
        /// Root CID of the HAMT.
        root: String,
    },
    /// Set KEY to VALUE (or to the bytes of --file, or of standard input with `-`); print
    /// the new root CID.
    Put {
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
    },
    /// Remove KEY; print the new root CID.
    Rm {
        /// Root CID of the HAMT.
        root: String,
        /// The key.
        key: String,
    },
    /// Print the CID of an empty HAMT (a starting point for `put`).
    New,
    /// Write every key as a file under DIR.
    Export {
        /// Root CID of the HAMT.
        root: String,
        /// Destination directory (created if missing).
        dir: PathBuf,
    },
    /// Count keys, nodes, bytes and depth.
    Stat {
        /// Root CID of the HAMT.
        root: String,
    },
    /// Show the keys added (+), removed (-) and modified (~) from ROOT1 to ROOT2.
    Diff {
        /// The older root.
        root1: String,
        /// The newer root.
        root2: String,
    },
    /// Write a CAR v1 file with every block of the HAMT and its values.
    ExportCar {
        /// Root CID of the HAMT.
        root: String,
        /// The CAR file to write.
        file: PathBuf,
    },
    /// Store every block of a CAR v1 file (each verified); print its roots.
    ImportCar {
        /// The CAR file to read.
        file: PathBuf,
    },
    /// Pin ROOT and everything under it on the node of `--store kubo+http://…` or
    /// `--store ipfs-embedded:PATH` (`--rm` unpins; `--from OLD` moves the pin from an older
    /// root).
    #[cfg(any(feature = "kubo", feature = "embedded"))]
    Pin {
        /// Root CID to pin.
        root: String,
        /// Remove the pin instead.
        #[arg(long, conflicts_with = "from")]
        rm: bool,
        /// Move the pin from this older root.
        #[arg(long)]
        from: Option<String>,
    },
    /// Zarr v3 datasets in py-hamt's `ZarrHAMTStore` layout: import, export, info.
    #[cfg(feature = "zarr")]
    #[command(subcommand)]
    Zarr(zarr::ZarrCommand),
    /// Check an S3 store: every index's pack is present and long enough; list packs left
    /// without an index by interrupted uploads.
    #[cfg(feature = "s3")]
    S3Check,
    /// Serve the store as an IPFS trustless HTTP gateway (GET /ipfs/{cid}) until SIGTERM or
    /// Ctrl-C. Logs go to stderr (`RUST_LOG` sets the level).
    #[cfg(feature = "gateway")]
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Require `Authorization: Bearer TOKEN`.
        #[arg(long, env = "HAMT_GATEWAY_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Most requests handled at once.
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        /// Seconds a request may take before it gets a 504.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hamt: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hamt: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let open = OpenStore::open(cli.store.as_deref()).await?;
    let store = open.store.clone();
    let out = Output { json: cli.json };
    #[cfg(feature = "embedded")]
    if let (Command::Pin { root, rm, from }, Some(node)) = (&cli.command, &open.embedded) {
        let result = pin_embedded(node, root, *rm, from.as_deref(), &out).await;
        return result.and(open.close().await);
    }
    #[cfg(feature = "kubo")]
    if let Command::Pin { root, rm, from } = &cli.command {
        let result = pin(open.kubo.as_ref(), root, *rm, from.as_deref(), &out).await;
        return result.and(open.close().await);
    }
    #[cfg(feature = "s3")]
    if let Some(s3) = &open.s3 {
        let result = match &cli.command {
            Command::S3Check => Some(s3_check(s3, &out).await),
            Command::ImportCar { file } => Some(s3_import_car(s3, file, &out).await),
            _ => None,
        };
        if let Some(result) = result {
            return result.and(open.close().await);
        }
    }
    #[cfg(feature = "s3")]
    if matches!(cli.command, Command::S3Check) {
        return Err(CliError::BadInput(
            "s3-check needs an S3 store: pass --store s3://BUCKET/PREFIX?endpoint=URL".into(),
        ));
    }
    let result = dispatch(cli.command, store, &out).await;
    // Flush what was written even when a later step failed.
    let closed = open.close().await;
    result.and(closed)
}

async fn dispatch(
    command: Command,
    store: Arc<dyn BlockStore>,
    out: &Output,
) -> Result<(), CliError> {
    match command {
        Command::Import { dir, bucket_size } => import(store, &dir, bucket_size, out).await,
        Command::Get {
            root,
            key,
            cbor_json,
        } => get(store, &root, &key, cbor_json).await,
        Command::Ls { root } => ls(store, &root, out).await,
        Command::Put {
            root,
            key,
            value,
            file,
        } => {
            let bytes = match (value.as_deref(), file) {
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
            let mut map = Hamt::open(store, cid(&root)?).await?;
            map.insert(&key, bytes).await?;
            out.root(map.flush().await?)
        }
        Command::Rm { root, key } => {
            let mut map = Hamt::open(store, cid(&root)?).await?;
            if map.remove(&key).await?.is_none() {
                return Err(CliError::KeyNotFound { key });
            }
            out.root(map.flush().await?)
        }
        Command::New => out.root(Hamt::new(store).flush().await?),
        Command::Export { root, dir } => export(store, &root, &dir, out).await,
        Command::Stat { root } => stat(store, &root, out).await,
        Command::Diff { root1, root2 } => diff(store, &root1, &root2, out).await,
        Command::ExportCar { root, file } => {
            let root = cid(&root)?;
            let f = tokio::fs::File::create(&file)
                .await
                .map_err(CliError::io(&file))?;
            let writer = tokio::io::BufWriter::new(f).compat_write();
            let blocks = hamt::car::export_car(&store, root, writer).await?;
            out.line(
                &format!("{blocks} blocks written to {}", file.display()),
                &json!({"root": root.to_string(), "blocks": blocks, "file": file}),
            )
        }
        #[cfg(feature = "gateway")]
        Command::Serve {
            listen,
            token,
            concurrency,
            timeout,
        } => serve(store, &listen, token, concurrency, timeout).await,
        // With the kubo feature `run` handles every pin; without it, only embedded ones.
        #[cfg(any(feature = "kubo", feature = "embedded"))]
        Command::Pin { .. } => Err(CliError::BadInput(
            "pinning needs a kubo+http://… or ipfs-embedded:… store".into(),
        )),
        #[cfg(feature = "zarr")]
        Command::Zarr(command) => zarr::run(command, store, out).await,
        #[cfg(feature = "s3")]
        Command::S3Check => unreachable!("handled in run"),
        Command::ImportCar { file } => {
            let f = tokio::fs::File::open(&file)
                .await
                .map_err(CliError::io(&file))?;
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
            if out.json {
                Output::value(
                    &json!({"roots": roots.iter().map(ToString::to_string).collect::<Vec<_>>(), "blocks": count}),
                )
            } else {
                let mut stdout = std::io::stdout().lock();
                for root in roots {
                    writeln!(stdout, "{root}").map_err(CliError::io("<stdout>"))?;
                }
                Ok(())
            }
        }
    }
}

/// `hamt pin`: pin, unpin or move a pin on a Kubo node.
#[cfg(feature = "kubo")]
async fn pin(
    kubo: Option<&hamt_store_kubo::KuboStore>,
    root: &str,
    rm: bool,
    from: Option<&str>,
    out: &Output,
) -> Result<(), CliError> {
    let kubo = kubo.ok_or_else(|| {
        CliError::BadInput("pinning needs a Kubo store: pass --store kubo+http://HOST:PORT".into())
    })?;
    let root = cid(root)?;
    let action = if rm {
        kubo.unpin(&root).await?;
        "unpinned"
    } else if let Some(old) = from {
        kubo.pin_update(&cid(old)?, &root).await?;
        "pin moved to"
    } else {
        kubo.pin(&root).await?;
        "pinned"
    };
    out.line(
        &format!("{action} {root}"),
        &json!({ "root": root.to_string(), "action": action }),
    )
}

/// `hamt pin` on an embedded node: a recursive pin that `gc` respects.
#[cfg(feature = "embedded")]
async fn pin_embedded(
    node: &hamt_store_embedded::EmbeddedStore,
    root: &str,
    rm: bool,
    from: Option<&str>,
    out: &Output,
) -> Result<(), CliError> {
    let root = cid(root)?;
    let action = if rm {
        node.unpin(&root).await?;
        "unpinned"
    } else {
        node.pin(&root).await?;
        if let Some(old) = from {
            node.unpin(&cid(old)?).await?;
            "pin moved to"
        } else {
            "pinned"
        }
    };
    out.line(
        &format!("{action} {root}"),
        &json!({ "root": root.to_string(), "action": action }),
    )
}

/// `hamt s3-check`.
#[cfg(feature = "s3")]
async fn s3_check(s3: &hamt_store_s3::S3Store, out: &Output) -> Result<(), CliError> {
    let report = s3.check().await?;
    let mut text = format!(
        "{} packs, {} blocks, {} bytes: every index has its data",
        report.packs, report.blocks, report.bytes
    );
    for orphan in &report.orphan_packs {
        text.push_str("\norphan pack (no index, unused): ");
        text.push_str(orphan);
    }
    out.line(
        &text,
        &json!({"packs": report.packs, "blocks": report.blocks, "bytes": report.bytes, "orphan_packs": report.orphan_packs}),
    )
}

/// `hamt import-car` into an S3 store: the file becomes one pack, uploaded unchanged.
#[cfg(feature = "s3")]
async fn s3_import_car(
    s3: &hamt_store_s3::S3Store,
    file: &Path,
    out: &Output,
) -> Result<(), CliError> {
    let imported = s3.import_car(file).await?;
    let roots: Vec<String> = imported.roots.iter().map(ToString::to_string).collect();
    if out.json {
        Output::value(&json!({"roots": roots, "blocks": imported.blocks, "pack": imported.pack}))
    } else {
        println_checked(&roots.join("\n"))
    }
}

/// `hamt serve`: the gateway over `store` until SIGTERM or Ctrl-C.
#[cfg(feature = "gateway")]
async fn serve(
    store: Arc<dyn BlockStore>,
    listen: &str,
    token: Option<String>,
    concurrency: usize,
    timeout: u64,
) -> Result<(), CliError> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let mut builder = hamt_gateway::GatewayBuilder::new(store)
        .concurrency(concurrency)
        .timeout(std::time::Duration::from_secs(timeout));
    if let Some(token) = token {
        builder = builder.bearer_token(token);
    }
    builder
        .build()
        .serve(listen, hamt_gateway::shutdown_signal())
        .await
        .map_err(CliError::from)
}

fn cid(text: &str) -> Result<Cid, CliError> {
    Ok(parse_cid(text)?)
}

/// Prints results as text or JSON.
struct Output {
    json: bool,
}

impl Output {
    fn value(value: &serde_json::Value) -> Result<(), CliError> {
        println_checked(&value.to_string())
    }

    fn line(&self, text: &str, value: &serde_json::Value) -> Result<(), CliError> {
        if self.json {
            Self::value(value)
        } else {
            println_checked(text)
        }
    }

    fn root(&self, root: Cid) -> Result<(), CliError> {
        self.line(&root.to_string(), &json!({ "root": root.to_string() }))
    }
}

fn print_checked(text: &str) -> Result<(), CliError> {
    write!(std::io::stdout().lock(), "{text}").map_err(CliError::io("<stdout>"))
}

fn println_checked(text: &str) -> Result<(), CliError> {
    writeln!(std::io::stdout().lock(), "{text}").map_err(CliError::io("<stdout>"))
}

/// Every regular file under `dir`, with its key, sorted by key.
fn walk(dir: &Path) -> Result<Vec<(String, PathBuf)>, CliError> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = std::fs::read_dir(&current).map_err(CliError::io(&current))?;
        for entry in entries {
            let entry = entry.map_err(CliError::io(&current))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(CliError::io(&path))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
                let rel = path.strip_prefix(dir).map_err(|_| {
                    CliError::BadInput(format!("{} is outside {}", path.display(), dir.display()))
                })?;
                let mut parts = Vec::new();
                for part in rel.components() {
                    let part = part.as_os_str().to_str().ok_or_else(|| {
                        CliError::BadInput(format!(
                            "{} is not valid UTF-8: keys are strings",
                            path.display()
                        ))
                    })?;
                    parts.push(part);
                }
                files.push((parts.join("/"), path));
            }
        }
    }
    files.sort();
    Ok(files)
}

async fn import(
    store: Arc<dyn BlockStore>,
    dir: &Path,
    bucket_size: usize,
    out: &Output,
) -> Result<(), CliError> {
    let meta = tokio::fs::metadata(dir).await.map_err(CliError::io(dir))?;
    if !meta.is_dir() {
        return Err(CliError::BadInput(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let files = walk(dir)?;
    let progress = ProgressBar::new(files.len() as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} importing {pos}/{len} files [{elapsed}] {wide_bar} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut map = Hamt::with_config(store, Config::new().max_bucket_size(bucket_size))?;
    let mut bytes = 0u64;
    for chunk in files.chunks(512) {
        let reads = futures::stream::iter(chunk)
            .map(|(key, path)| async move {
                let data = tokio::fs::read(path).await.map_err(CliError::io(path))?;
                Ok::<_, CliError>((key.as_str(), data))
            })
            .buffered(32)
            .try_collect::<Vec<_>>()
            .await?;
        bytes += reads.iter().map(|(_, d)| d.len() as u64).sum::<u64>();
        map.extend(reads).await?;
        progress.inc(chunk.len() as u64);
    }
    let root = map.flush().await?;
    progress.finish_and_clear();
    out.line(
        &root.to_string(),
        &json!({ "root": root.to_string(), "keys": files.len(), "bytes": bytes }),
    )
}

async fn get(
    store: Arc<dyn BlockStore>,
    root: &str,
    key: &str,
    cbor_json: bool,
) -> Result<(), CliError> {
    let reader = HamtReader::open(store, cid(root)?).await?;
    let value = reader
        .get(key)
        .await?
        .ok_or_else(|| CliError::KeyNotFound {
            key: key.to_owned(),
        })?;
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

async fn ls(store: Arc<dyn BlockStore>, root: &str, out: &Output) -> Result<(), CliError> {
    let reader = HamtReader::open(store, cid(root)?).await?;
    let mut keys: Vec<String> = reader.keys().try_collect().await?;
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

/// The path a key is exported to, refusing keys that would escape `dir`.
fn export_path(dir: &Path, key: &str) -> Result<PathBuf, CliError> {
    let rel = Path::new(key);
    let safe = !key.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !safe {
        return Err(CliError::BadInput(format!(
            "key {key:?} cannot be exported as a file: it is empty, absolute or has `.`/`..` parts"
        )));
    }
    Ok(dir.join(rel))
}

async fn export(
    store: Arc<dyn BlockStore>,
    root: &str,
    dir: &Path,
    out: &Output,
) -> Result<(), CliError> {
    let reader = HamtReader::open(store, cid(root)?).await?;
    // Check every key before writing anything.
    let keys: Vec<String> = reader.keys().try_collect().await?;
    for key in &keys {
        export_path(dir, key)?;
    }
    let mut values = std::pin::pin!(reader.iter());
    let mut count = 0u64;
    while let Some((key, data)) = values.try_next().await? {
        let path = export_path(dir, &key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(CliError::io(parent))?;
        }
        tokio::fs::write(&path, &data)
            .await
            .map_err(CliError::io(&path))?;
        count += 1;
    }
    out.line(
        &format!("{count} files written to {}", dir.display()),
        &json!({ "files": count, "dir": dir }),
    )
}

async fn stat(store: Arc<dyn BlockStore>, root: &str, out: &Output) -> Result<(), CliError> {
    let root = cid(root)?;
    let reader = HamtReader::open(store, root).await?;
    let stats = reader.stats().await?;
    let value_bytes: u64 = reader
        .iter()
        .map_ok(|(_, v)| v.len() as u64)
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

async fn diff(store: Arc<dyn BlockStore>, a: &str, b: &str, out: &Output) -> Result<(), CliError> {
    let (a, b) = (cid(a)?, cid(b)?);
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
