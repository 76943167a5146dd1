//! Directories in and out: `import DIR`, `export ROOT DIR`.
//!
//! Import takes regular files only, never follows a link out of DIR unless asked, and never
//! takes the store's own files; what it leaves out is counted (and listed with `-v`). Export
//! checks every key before it writes anything: each key must name one path of its own under
//! DIR, and nothing is written through a link found inside DIR.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use futures::{StreamExt as _, TryStreamExt as _};
use hamt::{BlockStore, Config, Hamt, HamtReader};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::error::CliError;
use crate::output::Output;
use crate::versions::Versions;

/// `hamt import`.
#[derive(Args)]
pub(crate) struct ImportArgs {
    /// The directory to import.
    dir: PathBuf,
    /// Most keys per bucket (py-hamt's `max_bucket_size`).
    #[arg(long, default_value_t = 4)]
    bucket_size: usize,
    /// Follow symbolic links wherever they point (by default a link to a file inside DIR is
    /// followed, and links to directories or out of DIR are left out).
    #[arg(long)]
    follow_symlinks: bool,
    /// List every path left out, on standard error.
    #[arg(short, long)]
    verbose: bool,
}

/// `hamt export`.
#[derive(Args)]
pub(crate) struct ExportArgs {
    /// Root CID of the HAMT.
    root: String,
    /// Destination directory (created if missing).
    dir: PathBuf,
}

/// Why a path under DIR was left out of an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Skip {
    /// A link to a directory (followed only with `--follow-symlinks`).
    DirLink,
    /// A link to a directory above it, which would loop for ever.
    LoopLink,
    /// A link that points out of DIR, or nowhere.
    OutsideLink,
    /// A FIFO, socket or device.
    Special,
    /// The store's own files.
    Store,
}

impl Skip {
    fn reason(self) -> &'static str {
        match self {
            Skip::DirLink => "links to directories",
            Skip::LoopLink => "links to a directory they are in",
            Skip::OutsideLink => "links out of the directory or to nothing",
            Skip::Special => "FIFOs, sockets or devices",
            Skip::Store => "the store's own files",
        }
    }
}

/// The files to import, by key, and what was left out.
#[derive(Debug, Default)]
struct Walked {
    files: Vec<(String, PathBuf)>,
    skipped: Vec<(Skip, PathBuf)>,
}

/// The key of `path` under `dir`: its parts joined with `/`.
fn key_of(dir: &Path, path: &Path) -> Result<String, CliError> {
    let rel = path.strip_prefix(dir).map_err(|_| {
        CliError::BadInput(format!("{} is outside {}", path.display(), dir.display()))
    })?;
    let mut parts = Vec::new();
    for part in rel.components() {
        parts.push(part.as_os_str().to_str().ok_or_else(|| {
            CliError::BadInput(format!(
                "{} is not valid UTF-8: keys are strings",
                path.display()
            ))
        })?);
    }
    Ok(parts.join("/"))
}

/// Every regular file under `dir`, with its key, sorted by key.
fn walk(dir: &Path, store_path: Option<&Path>, follow: bool) -> Result<Walked, CliError> {
    let real_dir = dir.canonicalize().map_err(CliError::io(dir))?;
    let store_path = store_path.and_then(|p| p.canonicalize().ok());
    let mut walked = Walked::default();
    // Each directory to read, with the real paths of the directories it is reached through,
    // so that a followed link back into one of them is not walked for ever.
    let mut stack = vec![(dir.to_path_buf(), vec![real_dir.clone()])];
    while let Some((current, chain)) = stack.pop() {
        let entries = std::fs::read_dir(&current).map_err(CliError::io(&current))?;
        for entry in entries {
            let entry = entry.map_err(CliError::io(&current))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(CliError::io(&path))?;
            let real = if kind.is_symlink() {
                path.canonicalize().ok()
            } else {
                Some(path.clone())
            };
            let target = match (&real, kind.is_symlink()) {
                (None, _) => {
                    walked.skipped.push((Skip::OutsideLink, path));
                    continue;
                }
                (Some(real), true) => std::fs::metadata(real).map_err(CliError::io(real))?,
                (Some(_), false) => entry.metadata().map_err(CliError::io(&path))?,
            };
            let real = real.unwrap_or_default();
            let inside = real.starts_with(&real_dir);
            if let Some(store) = &store_path {
                let real_abs = real.canonicalize().unwrap_or_else(|_| real.clone());
                if real_abs.starts_with(store) {
                    walked.skipped.push((Skip::Store, path));
                    continue;
                }
            }
            if target.is_dir() {
                let real = real.canonicalize().map_err(CliError::io(&real))?;
                if kind.is_symlink() && !follow {
                    walked.skipped.push((Skip::DirLink, path));
                } else if chain.contains(&real) {
                    walked.skipped.push((Skip::LoopLink, path));
                } else {
                    let mut chain = chain.clone();
                    chain.push(real);
                    stack.push((path, chain));
                }
            } else if target.is_file() {
                if kind.is_symlink() && !inside && !follow {
                    walked.skipped.push((Skip::OutsideLink, path));
                } else {
                    walked.files.push((key_of(dir, &path)?, path));
                }
            } else {
                walked.skipped.push((Skip::Special, path));
            }
        }
    }
    walked.files.sort();
    walked.skipped.sort();
    Ok(walked)
}

/// Says on standard error what the import left out: a count per reason, each path with `-v`.
fn report_skipped(skipped: &[(Skip, PathBuf)], verbose: bool) {
    let mut counts: BTreeMap<Skip, usize> = BTreeMap::new();
    for (why, path) in skipped {
        *counts.entry(*why).or_default() += 1;
        if verbose {
            eprintln!("hamt: left out {} ({})", path.display(), why.reason());
        }
    }
    for (why, n) in counts {
        eprintln!("hamt: left out {n} path(s): {}", why.reason());
    }
}

pub(crate) async fn import(
    store: Arc<dyn BlockStore>,
    store_path: Option<&Path>,
    args: ImportArgs,
    out: &Output,
) -> Result<(), CliError> {
    let ImportArgs {
        dir,
        bucket_size,
        follow_symlinks,
        verbose,
    } = args;
    let meta = tokio::fs::metadata(&dir)
        .await
        .map_err(CliError::io(&dir))?;
    if !meta.is_dir() {
        return Err(CliError::BadInput(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let Walked { files, skipped } = walk(&dir, store_path, follow_symlinks)?;
    report_skipped(&skipped, verbose);
    let progress = ProgressBar::new(files.len() as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} importing {pos}/{len} files [{elapsed}] {wide_bar} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut map = Hamt::with_config(store.clone(), Config::new().max_bucket_size(bucket_size))?;
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
    out.durable_line(
        store.as_ref(),
        &root.to_string(),
        &json!({
            "root": root.to_string(),
            "keys": files.len(),
            "bytes": bytes,
            "skipped": skipped.len(),
        }),
    )
    .await
}

/// The relative path a key is exported to: its `/`-separated parts, each a plain file name.
/// Keys with empty, `.` or `..` parts, a leading `/`, or a NUL or backslash are refused,
/// so that two different keys never name one path.
fn export_rel(key: &str) -> Result<PathBuf, CliError> {
    let refuse = |why: &str| {
        Err(CliError::BadInput(format!(
            "key {key:?} cannot be exported as a file: {why}"
        )))
    };
    if key.is_empty() {
        return refuse("it is empty");
    }
    let mut rel = PathBuf::new();
    for part in key.split('/') {
        match part {
            "" => return refuse("it has an empty part (a leading, doubled or trailing `/`)"),
            "." | ".." => return refuse("it has `.` or `..` parts"),
            p if p.contains(['\0', '\\']) => return refuse("it has a NUL or a backslash"),
            p => rel.push(p),
        }
    }
    Ok(rel)
}

/// Checks every key before anything is written: each maps to a path of its own, and no key
/// is both a file and a directory of others (`x` and `x/y`).
fn plan_export(keys: &[String]) -> Result<BTreeMap<String, PathBuf>, CliError> {
    let mut plan = BTreeMap::new();
    let mut dirs: BTreeMap<PathBuf, &str> = BTreeMap::new();
    for key in keys {
        let rel = export_rel(key)?;
        let mut parent = rel.parent();
        while let Some(dir) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.entry(dir.to_path_buf()).or_insert(key.as_str());
            parent = dir.parent();
        }
        plan.insert(key.clone(), rel);
    }
    for (key, rel) in &plan {
        if let Some(other) = dirs.get(rel) {
            return Err(CliError::BadInput(format!(
                "keys {key:?} and {other:?} cannot both be exported: the first would be a file \
                 where the second needs a directory"
            )));
        }
    }
    Ok(plan)
}

/// Fails when a part of `rel` under `dir` already exists as a symbolic link, so nothing is
/// written outside `dir` through a link placed inside it. `checked` remembers the
/// directories already seen clean.
fn refuse_links(dir: &Path, rel: &Path, checked: &mut BTreeSet<PathBuf>) -> Result<(), CliError> {
    let mut at = dir.to_path_buf();
    for part in rel.components() {
        at.push(part);
        if checked.contains(&at) {
            continue;
        }
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(CliError::BadInput(format!(
                    "{} is a symbolic link: export does not write through links inside {}",
                    at.display(),
                    dir.display()
                )));
            }
            Ok(meta) if meta.is_dir() => {
                checked.insert(at.clone());
            }
            Ok(_) => {}
            // Not there yet: nothing below it can be a link either.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(CliError::io(&at)(e)),
        }
    }
    Ok(())
}

pub(crate) async fn export(
    store: Arc<dyn BlockStore>,
    rev: &Versions<'_>,
    args: ExportArgs,
    out: &Output,
) -> Result<(), CliError> {
    let dir = args.dir;
    let root = rev.root(&args.root).await?;
    #[cfg(feature = "zarr")]
    if let Some(dataset) = crate::sharded_dataset(&store, root).await? {
        let keys = dataset.keys().await?;
        let plan = checked_plan(&dir, &keys)?;
        for (key, rel) in &plan {
            let data = dataset
                .get_value(key)
                .await?
                .ok_or_else(|| CliError::BadInput(format!("key {key:?} vanished during export")))?;
            write_file(&dir.join(rel), &data).await?;
        }
        return exported(out, plan.len() as u64, &dir);
    }
    let reader = HamtReader::open(store, root).await?;
    let keys: Vec<String> = reader.keys().try_collect().await?;
    let plan = checked_plan(&dir, &keys)?;
    let mut values = std::pin::pin!(reader.iter());
    let mut count = 0u64;
    while let Some((key, data)) = values.try_next().await? {
        let rel = plan
            .get(&key)
            .ok_or_else(|| CliError::BadInput(format!("key {key:?} appeared during export")))?;
        write_file(&dir.join(rel), &data).await?;
        count += 1;
    }
    exported(out, count, &dir)
}

/// [`plan_export`], then [`refuse_links`] for every path: all before anything is written.
fn checked_plan(dir: &Path, keys: &[String]) -> Result<BTreeMap<String, PathBuf>, CliError> {
    let plan = plan_export(keys)?;
    let mut checked = BTreeSet::new();
    for rel in plan.values() {
        refuse_links(dir, rel, &mut checked)?;
    }
    Ok(plan)
}

/// Writes one exported value, creating its directories.
async fn write_file(path: &Path, data: &[u8]) -> Result<(), CliError> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(CliError::io(parent))?;
    }
    tokio::fs::write(path, data)
        .await
        .map_err(CliError::io(path))
}

fn exported(out: &Output, count: u64, dir: &Path) -> Result<(), CliError> {
    out.line(
        &format!("{count} files written to {}", dir.display()),
        &json!({ "files": count, "dir": dir }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_would_share_a_path_are_refused() {
        for bad in [
            "", "/a", "a/", "a//b", "a/./b", "./a", "a/../b", "..", "a\\b", "a\0b",
        ] {
            assert!(export_rel(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(export_rel("a/b.csv").unwrap(), Path::new("a").join("b.csv"));
        let keys = |k: &[&str]| k.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(plan_export(&keys(&["a/b", "a/c", "d"])).is_ok());
        let err = plan_export(&keys(&["x", "x/y"])).unwrap_err().to_string();
        assert!(err.contains("\"x\"") && err.contains("\"x/y\""), "{err}");
        assert!(plan_export(&keys(&["x/y/z", "x/y"])).is_err());
    }
}
