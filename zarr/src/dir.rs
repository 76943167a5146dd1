//! Copying Zarr v3 directory stores into a [`HamtStore`], and any dataset out of its store.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _, stream};

use crate::HamtStore;
use crate::error::{Error, Result};
use crate::metadata;
use crate::source::Source;

/// Files read or written at once.
const CONCURRENCY: usize = 16;

/// What a copy moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Keys (files).
    pub keys: u64,
    /// Value bytes (as Zarr sees them, before encryption).
    pub bytes: u64,
}

/// The files of a Zarr v3 directory store, as (key, path, size), sorted by key.
///
/// # Errors
/// [`Error::NotZarr`] when `dir` has no `zarr.json` of format 3 at its top;
/// [`Error::InvalidKey`] for a file name that is not UTF-8; [`Error::Io`].
pub fn scan_dir(dir: &Path) -> Result<Vec<(String, PathBuf, u64)>> {
    let top = dir.join("zarr.json");
    let meta = std::fs::read(&top).map_err(|e| Error::NotZarr {
        path: dir.into(),
        reason: format!("cannot read zarr.json: {e}"),
    })?;
    let format = serde_json::from_slice::<serde_json::Value>(&meta)
        .ok()
        .and_then(|v| v.get("zarr_format").and_then(serde_json::Value::as_u64));
    if format != Some(3) {
        return Err(Error::NotZarr {
            path: dir.into(),
            reason: "zarr.json does not say \"zarr_format\": 3".into(),
        });
    }
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).map_err(Error::io(&next))? {
            let entry = entry.map_err(Error::io(&next))?;
            let path = entry.path();
            let meta = std::fs::metadata(&path).map_err(Error::io(&path))?;
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() {
                let key = key_of(dir, &path)?;
                files.push((key, path, meta.len()));
            }
        }
    }
    files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

fn key_of(dir: &Path, path: &Path) -> Result<String> {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    let parts = rel
        .components()
        .map(|c| {
            c.as_os_str().to_str().ok_or_else(|| Error::InvalidKey {
                key: rel.to_string_lossy().into_owned(),
                reason: "file names must be UTF-8".into(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(parts.join("/"))
}

/// Stores every file of the Zarr v3 directory store `dir` under its relative path (with `/`
/// separators), as py-hamt's `ZarrHAMTStore` lays a dataset out. `progress` is called with
/// each file's size once it is stored. Call [`HamtStore::flush`] afterwards for the root.
///
/// # Errors
/// As [`scan_dir`], and store failures.
pub async fn import_dir(
    store: &HamtStore,
    dir: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Copied> {
    // Listing is quick next to storing; it runs on the calling task.
    let files = scan_dir(dir)?;
    let stored = stream::iter(files).map(|(key, path, _)| async move {
        let bytes = tokio::fs::read(&path).await.map_err(Error::io(&path))?;
        let n = bytes.len() as u64;
        store.set_value(&key, bytes).await?;
        progress(n);
        Ok(n)
    });
    tally(stored).await
}

/// Writes every key of `store` (a [`HamtStore`], a [`ShardedStore`](crate::ShardedStore) or a
/// [`Dataset`](crate::Dataset)) as a file under `dir` (created if missing): a Zarr v3
/// directory store that any Zarr implementation opens. `progress` is called with each
/// value's size once written.
///
/// Every key is checked, and every metadata document read, before anything is written: an
/// encrypted dataset opened without its key is refused, never exported as ciphertext.
///
/// # Errors
/// [`Error::InvalidKey`] for a key that would leave `dir` (an absolute path, `..`, empty
/// parts); [`Error::Encrypted`] for a metadata document that is ciphertext; store failures;
/// [`Error::Io`].
pub async fn export_dir<S: Source + ?Sized>(
    store: &S,
    dir: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Copied> {
    let keys = store.keys_with_prefix("").await?;
    let targets = keys
        .into_iter()
        .map(|key| {
            let path = safe_path(dir, &key)?;
            Ok((key, path))
        })
        .collect::<Result<Vec<_>>>()?;
    let (documents, chunks): (Vec<_>, Vec<_>) = targets
        .into_iter()
        .partition(|(key, _)| metadata::is_json_key(key));
    let documents: Vec<(String, PathBuf, Bytes)> = stream::iter(documents)
        .map(|(key, path)| async move {
            let value = fetch(store, &key).await?;
            metadata::refuse_encrypted(&key, &value)?;
            Ok::<_, Error>((key, path, value))
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    // The documents as read, then every chunk as the dataset's values stream in (one CAR
    // stream of the tree over a gateway).
    let written = tally(
        stream::iter(documents)
            .map(|(_, path, value)| async move { write_file(&path, &value, progress).await }),
    )
    .await?;
    let mut paths: HashMap<String, PathBuf> = chunks.into_iter().collect();
    let expected = paths.len();
    let chunks = tally(
        store
            .values("")
            .try_filter_map(|(key, value)| {
                std::future::ready(Ok(paths.remove(&key).map(|path| (path, value))))
            })
            .map(|found| async move {
                let (path, value) = found?;
                write_file(&path, &value, progress).await
            }),
    )
    .await?;
    if chunks.keys < expected as u64 {
        return Err(Error::InvalidKey {
            key: paths.into_keys().next().unwrap_or_default(),
            reason: "removed while exporting".into(),
        });
    }
    Ok(Copied {
        keys: written.keys + chunks.keys,
        bytes: written.bytes + chunks.bytes,
    })
}

/// The value of a listed key.
async fn fetch<S: Source + ?Sized>(store: &S, key: &str) -> Result<Bytes> {
    store
        .get_value(key)
        .await?
        .ok_or_else(|| Error::InvalidKey {
            key: key.into(),
            reason: "removed while exporting".into(),
        })
}

/// Writes `value` to `path`, creating its directory; reports and returns its size.
async fn write_file(path: &Path, value: &[u8], progress: &(dyn Fn(u64) + Sync)) -> Result<u64> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(Error::io(parent))?;
    }
    tokio::fs::write(path, value)
        .await
        .map_err(Error::io(path))?;
    let n = value.len() as u64;
    progress(n);
    Ok(n)
}

/// Runs the copies, [`CONCURRENCY`] at once, and counts what they moved.
async fn tally(
    copies: impl futures::Stream<Item = impl Future<Output = Result<u64>>>,
) -> Result<Copied> {
    copies
        .buffer_unordered(CONCURRENCY)
        .try_fold(Copied::default(), |acc, n| async move {
            Ok(Copied {
                keys: acc.keys + 1,
                bytes: acc.bytes + n,
            })
        })
        .await
}

/// `dir` joined with the parts of `key`, refusing keys that would escape `dir`: a dataset
/// read from the network is untrusted input.
fn safe_path(dir: &Path, key: &str) -> Result<PathBuf> {
    let bad = |reason: &str| Error::InvalidKey {
        key: key.into(),
        reason: reason.into(),
    };
    let mut path = dir.to_path_buf();
    for part in key.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains('\\') {
            return Err(bad("empty, `.` or `..` parts, or a backslash"));
        }
        let mut comps = Path::new(part).components();
        if !matches!(
            (comps.next(), comps.next()),
            (Some(Component::Normal(_)), None)
        ) {
            return Err(bad("not a plain file name"));
        }
        path.push(part);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_directory() {
        let dir = Path::new("/tmp/out");
        assert_eq!(safe_path(dir, "a/c/0/1").unwrap(), dir.join("a/c/0/1"));
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "",
            "a/./b",
            "a\\..\\b",
        ] {
            assert!(safe_path(dir, bad).is_err(), "{bad:?}");
        }
    }
}
