//! The `hamt` command: HAMTs in py-hamt's format over any block store.
//!
//! The store is named by `--store URL` or `HAMT_STORE` and opened through the workspace's
//! store registry (`hamt-registry`); without either it is a sled database in the user's
//! data directory, so everything works with no daemon. Every command that prints a root
//! makes the store durable first. Exit codes: 0 success, 1 error, 2 bad usage, 3 a key or
//! block that is not there.

mod car;
mod error;
mod files;
mod json;
mod map;
mod node;
mod output;
#[cfg(feature = "gateway")]
mod serve;
mod versions;
#[cfg(feature = "zarr")]
mod zarr;

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use hamt::Cid;

use crate::error::CliError;
use crate::output::Output;
pub(crate) use crate::output::print_checked;

const EXIT_CODES: &str =
    "Exit codes: 0 success, 1 error, 2 bad usage, 3 a key or block that is not there.";

#[derive(Parser)]
#[command(
    name = "hamt",
    version,
    about = "HAMTs in py-hamt's format over content-addressed blocks",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Block store URL (the forms this build opens are listed below). Default: a sled
    /// database in the user's data directory.
    #[arg(long, global = true, env = "HAMT_STORE")]
    store: Option<String>,

    /// Ref store URL (`mem:`, `sled:PATH`, `s3://BUCKET/PREFIX`) for branches and tags.
    /// Default: the one that goes with the store (sled: its own database; S3: objects under
    /// its prefix; IPFS: a sled database in the user's data directory).
    #[arg(long, global = true, env = "HAMT_REFS")]
    refs: Option<String>,

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
    Import(files::ImportArgs),
    /// Write the value of KEY to standard output.
    Get(map::GetArgs),
    /// List the keys, one per line.
    Ls(map::RootArgs),
    /// Set KEY to VALUE (or to the bytes of --file, or of standard input with `-`); print
    /// the new root CID.
    Put(map::PutArgs),
    /// Remove KEY; print the new root CID.
    Rm(map::KeyArgs),
    /// Print the CID of an empty HAMT (a starting point for `put`).
    New,
    /// Write every key as a file under DIR.
    Export(files::ExportArgs),
    /// Count keys, nodes, bytes and depth.
    Stat(map::RootArgs),
    /// Show the keys added (+), removed (-) and modified (~) from ROOT1 to ROOT2.
    Diff(map::DiffArgs),
    /// Write a CAR v1 file with every block of the HAMT and its values.
    ExportCar(car::ExportCarArgs),
    /// Store every block of a CAR v1 file (each verified); print its roots.
    ImportCar(car::ImportCarArgs),
    /// Pin ROOT and everything under it on the store's IPFS node (a Kubo store or an
    /// embedded node; `--rm` unpins; `--from OLD` moves the pin from an older root).
    Pin(node::PinArgs),
    /// Check a store that keeps structures of its own (S3: every index's pack is present
    /// and long enough; packs left without an index by interrupted uploads are listed).
    #[command(visible_alias = "s3-check")]
    Check,
    /// Zarr v3 datasets in py-hamt's layouts: import, export, info, and shard (convert to
    /// the sharded layout).
    #[cfg(feature = "zarr")]
    #[command(subcommand)]
    Zarr(zarr::ZarrCommand),
    /// Commit ROOT to a branch (default main) and print the commit's CID; a branch that moved
    /// since the base gets the changes merged onto its new head.
    Commit(versions::CommitArgs),
    /// Show a branch's history (default main), with the keys each commit changed.
    Log(versions::LogArgs),
    /// Branches: list, create, delete, reset.
    #[command(subcommand)]
    Branch(versions::RefCommand),
    /// Tags (never moved once made): list, create, delete.
    #[command(subcommand)]
    Tag(versions::RefCommand),
    /// Merge a branch, tag or commit into a branch (three-way, or a fast-forward).
    Merge(versions::MergeArgs),
    /// Drop a branch's commits older than a time from its history.
    Expire(versions::ExpireArgs),
    /// Delete blocks (sled) or packs (S3) that no branch or tag keeps, after a grace period.
    Gc(versions::GcArgs),
    /// Serve the store as an IPFS trustless HTTP gateway (GET /ipfs/{cid}) until SIGTERM or
    /// Ctrl-C. Logs go to stderr (`RUST_LOG` sets the level).
    #[cfg(feature = "gateway")]
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let command = Cli::command().mut_arg("store", |arg| {
        arg.long_help(format!(
            "Block store URL: {}. Default: a sled database in the user's data directory.",
            hamt_registry::usage()
        ))
    });
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hamt: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.json;
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                eprintln!("{}", e.to_json());
            } else {
                eprintln!("hamt: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let url = match cli.store {
        Some(url) => url,
        None => hamt_registry::default_url()?,
    };
    let opened = hamt_registry::open(&url).await?;
    let out = Output { json: cli.json };
    let result = {
        let rev = versions::Versions::new(&opened, url, cli.refs);
        dispatch(cli.command, &opened, &rev, &out).await
    };
    // Make what was written durable and let go of the store, even when a step failed.
    let closed = opened.close().await;
    result.and(closed.map_err(CliError::from))
}

/// Runs one command on the opened store; `rev` resolves the revisions its arguments name.
async fn dispatch(
    command: Command,
    opened: &hamt_registry::OpenStore,
    rev: &versions::Versions<'_>,
    out: &Output,
) -> Result<(), CliError> {
    let store = opened.store().clone();
    match command {
        Command::Import(args) => files::import(store, opened.local_path(), args, out).await,
        Command::Get(args) => map::get(store, rev, args).await,
        Command::Ls(args) => map::ls(store, rev, args, out).await,
        Command::Put(args) => map::put(store, rev, args, out).await,
        Command::Rm(args) => map::rm(store, rev, args, out).await,
        Command::New => map::new(store, out).await,
        Command::Export(args) => files::export(store, rev, args, out).await,
        Command::Stat(args) => map::stat(store, rev, args, out).await,
        Command::Diff(args) => map::diff(store, rev, args, out).await,
        Command::ExportCar(args) => car::export_car(store, rev, args, out).await,
        Command::ImportCar(args) => car::import_car(store, args, out).await,
        Command::Pin(args) => node::pin(store, opened.scheme(), rev, args, out).await,
        Command::Check => node::check(store, opened.scheme(), out).await,
        #[cfg(feature = "zarr")]
        Command::Zarr(command) => zarr::run(command, store, rev, out).await,
        Command::Commit(args) => versions::commit(rev, args, out).await,
        Command::Log(args) => versions::log(rev, args, out).await,
        Command::Branch(c) => versions::refs(rev, hamt_versions::RefKind::Branch, c, out).await,
        Command::Tag(c) => versions::refs(rev, hamt_versions::RefKind::Tag, c, out).await,
        Command::Merge(args) => versions::merge(rev, args, out).await,
        Command::Expire(args) => versions::expire(rev, args, out).await,
        Command::Gc(args) => versions::gc(rev, args, out).await,
        #[cfg(feature = "gateway")]
        Command::Serve(args) => serve::serve(store, args).await,
    }
}

/// The dataset at `root` when it is a sharded Zarr root (py-hamt's `ShardedZarrStore`
/// layout), so the generic commands read both layouts; `None` for a HAMT.
#[cfg(feature = "zarr")]
async fn sharded_dataset(
    store: &std::sync::Arc<dyn hamt::BlockStore>,
    root: Cid,
) -> Result<Option<hamt_zarr::Dataset>, CliError> {
    if hamt_zarr::Layout::detect(store, &root).await? != hamt_zarr::Layout::Sharded {
        return Ok(None);
    }
    Ok(Some(hamt_zarr::Dataset::open(store.clone(), root).await?))
}
