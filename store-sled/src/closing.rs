//! Reopening a database this process has just closed.
//!
//! sled holds its lock (an exclusive `flock` on the `db` file) through a file handle that
//! its background I/O threads share. When the last [`SledStore`](crate::SledStore) handle
//! drops, the database is flushed and closed, but a write of sled's I/O pool that was still
//! running keeps the file, and so the lock, for a few milliseconds more. A program that
//! closes a store and opens it again at once (a test, a Python session that reopens a path,
//! a CLI command run in-process) would then be told the database is locked by another
//! process, which is false.
//!
//! So each close is recorded here, by path, and [`SledStoreBuilder::open`] that meets the
//! lock on a path this process closed within [`GRACE`] waits for sled to let go, retrying
//! with a short back-off. A lock held by another process, or by a handle of this process
//! that is still open, is reported at once as before: neither is a recent close (an open
//! clears the path's record).
//!
//! [`SledStoreBuilder::open`]: crate::SledStoreBuilder::open

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long after a close of this process a lock on the same path is taken to be sled's
/// background threads letting go, and waited for.
pub(crate) const GRACE: Duration = Duration::from_secs(5);

/// The first wait between two attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(2);
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// When each path was last closed by this process. Entries older than [`GRACE`] are dropped
/// whenever a close is recorded, so the map stays as small as the number of recent closes.
static CLOSED: Mutex<BTreeMap<PathBuf, Instant>> = Mutex::new(BTreeMap::new());

/// The record of closes. Nothing here can leave it inconsistent, so a poisoned lock is
/// taken as is.
fn closes() -> MutexGuard<'static, BTreeMap<PathBuf, Instant>> {
    CLOSED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The key of `path` in [`CLOSED`]: the canonical path when it exists, so that `db` and
/// `./db` are one database.
fn key(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Records that the last handle on the database at `path` has just been dropped.
pub(crate) fn closed(path: &Path) {
    let key = key(path);
    let now = Instant::now();
    let mut closed = closes();
    closed.retain(|_, at| now.duration_since(*at) < GRACE);
    closed.insert(key, now);
}

/// Records that the database at `path` is open again: a lock met on it from now on is held
/// by that handle, and is reported at once.
fn opened(path: &Path) {
    let mut closed = closes();
    if !closed.is_empty() {
        closed.remove(&key(path));
    }
}

/// The deadline until which a lock on `path` is waited for, if this process closed it
/// within [`GRACE`].
fn deadline(path: &Path) -> Option<Instant> {
    let closed = closes();
    let at = *closed.get(&key(path))?;
    let deadline = at + GRACE;
    (Instant::now() < deadline).then_some(deadline)
}

/// Runs `open` once, and again while it fails with a lock that a recent close of this
/// process at `path` explains, until it succeeds, fails otherwise, or the grace runs out.
/// Success clears the path's record ([`opened`]).
pub(crate) fn retry<T, E>(
    path: &Path,
    is_locked: impl Fn(&E) -> bool,
    mut open: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut pause = FIRST_PAUSE;
    loop {
        match open() {
            Err(e) if is_locked(&e) => match deadline(path) {
                Some(deadline) if Instant::now() + pause < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_PAUSE);
                }
                _ => return Err(e),
            },
            done => {
                if done.is_ok() {
                    opened(path);
                }
                return done;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_lock_without_a_recent_close_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let tries = Cell::new(0);
        let result: Result<(), &str> = retry(
            dir.path(),
            |_| true,
            || {
                tries.set(tries.get() + 1);
                Err("locked")
            },
        );
        assert_eq!(result, Err("locked"));
        assert_eq!(tries.get(), 1);
    }

    #[test]
    fn a_lock_after_a_recent_close_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        closed(dir.path());
        let tries = Cell::new(0);
        let result = retry(
            // Another spelling of the same directory is the same database.
            &dir.path().join("."),
            |e: &&str| *e == "locked",
            || {
                tries.set(tries.get() + 1);
                if tries.get() < 4 {
                    Err("locked")
                } else {
                    Ok(7)
                }
            },
        );
        assert_eq!(result, Ok(7));
        assert_eq!(tries.get(), 4);
        assert_eq!(deadline(dir.path()), None, "the open cleared the record");
    }

    #[test]
    fn other_errors_are_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        closed(dir.path());
        let tries = Cell::new(0);
        let result: Result<(), &str> = retry(
            dir.path(),
            |e: &&str| *e == "locked",
            || {
                tries.set(tries.get() + 1);
                Err("corrupt")
            },
        );
        assert_eq!(result, Err("corrupt"));
        assert_eq!(tries.get(), 1);
    }
}
