//! A damaged sled database is a typed error, never a panic and never wrong data.
//!
//! One 50 000-key store (values of the sizes a Zarr store holds: small metadata, chunks of
//! kilobytes, which are files of their own, a few of 256 KiB) is written and closed once;
//! every case then damages a copy of its files (truncation at many sizes, flipped bytes, a
//! missing file), opens the copy and reads every key back, one case a core at a time. Each
//! case must end in the right data or in a typed error; a panic anywhere, or a value that
//! differs, fails the test with the case named.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::TryStreamExt as _;
use hamt::{Cid, Hamt, HamtReader};
use hamt_store_sled::SledStore;
use hamt_test_support::{Rng, copy_dir};

const KEYS: usize = 50_000;

fn key(i: usize) -> String {
    format!("temperature/{}.{}.{}", i / 10_000, (i / 100) % 100, i % 100)
}

/// The value of key `i`: 97 % of values are 8..512 bytes, 3 % are 4..16 KiB chunks (over
/// 4 KiB, so each is a file in `large/`), and every 5000th is 256 KiB.
fn value(i: usize) -> Vec<u8> {
    let mut rng = Rng(i as u64);
    let len = if i % 5000 == 4999 {
        256 << 10
    } else if rng.below(100) < 3 {
        4096 + usize::try_from(rng.below(12 << 10)).unwrap()
    } else {
        8 + usize::try_from(rng.below(504)).unwrap()
    };
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Writes the store, closes it and returns its root.
fn build(path: &Path) -> Cid {
    futures::executor::block_on(async {
        let store = Arc::new(SledStore::open(path).unwrap());
        let mut map = Hamt::new(store.clone());
        for first in (0..KEYS).step_by(5000) {
            map.extend((first..first + 5000).map(|i| (key(i), value(i))))
                .await
                .unwrap();
        }
        let root = map.flush().await.unwrap();
        store.flush().await.unwrap();
        root
    })
}

/// How one damaged copy ended.
enum Outcome {
    /// Opened, and every key read back with its value.
    Intact,
    /// A typed error, at open or at a read.
    Error(String),
    /// Something panicked: the bug this test is for.
    Panic(String),
    /// A read returned a value that is not the one written, or keys went missing silently.
    Wrong(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Intact => write!(f, "intact"),
            Outcome::Error(e) => write!(f, "typed error: {e}"),
            Outcome::Panic(p) => write!(f, "PANIC: {p}"),
            Outcome::Wrong(w) => write!(f, "WRONG DATA: {w}"),
        }
    }
}

/// Opens the store at `path` and reads every key, through the same calls a user makes.
async fn read_all(path: &Path, root: Cid) -> Outcome {
    let store = match SledStore::open(path) {
        Ok(s) => Arc::new(s),
        Err(e) => return Outcome::Error(format!("open: {e}")),
    };
    let reader = match HamtReader::open(store, root).await {
        Ok(r) => r,
        Err(e) => return Outcome::Error(format!("root: {e}")),
    };
    let entries: Vec<(String, bytes::Bytes)> = match reader.iter().try_collect().await {
        Ok(v) => v,
        Err(e) => return Outcome::Error(format!("read: {e}")),
    };
    if entries.len() != KEYS {
        return Outcome::Wrong(format!("{} keys, not {KEYS}", entries.len()));
    }
    let index: HashMap<String, usize> = (0..KEYS).map(|i| (key(i), i)).collect();
    for (k, v) in &entries {
        match index.get(k) {
            Some(&i) if v[..] == value(i)[..] => {}
            Some(_) => return Outcome::Wrong(format!("value of {k} differs")),
            None => return Outcome::Wrong(format!("unknown key {k}")),
        }
    }
    Outcome::Intact
}

/// Opens and reads a damaged copy with any panic caught, so every case is reported.
fn check(path: &Path, root: Cid) -> Outcome {
    let run = AssertUnwindSafe(|| futures::executor::block_on(read_all(path, root)));
    match std::panic::catch_unwind(run) {
        Ok(outcome) => outcome,
        Err(payload) => Outcome::Panic(
            payload
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default(),
        ),
    }
}

/// The files of a sled database, relative to its directory.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// One way of damaging a copy.
#[derive(Debug, Clone)]
enum Damage {
    Truncate(PathBuf, u64),
    Flip(PathBuf, u64),
    Remove(PathBuf),
}

impl Damage {
    fn apply(&self, dir: &Path) {
        match self {
            Damage::Truncate(f, len) => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join(f))
                    .unwrap();
                file.set_len(*len).unwrap();
            }
            Damage::Flip(f, at) => {
                let p = dir.join(f);
                let mut bytes = std::fs::read(&p).unwrap();
                let at = usize::try_from(*at).unwrap();
                bytes[at] ^= 0xFF;
                std::fs::write(&p, bytes).unwrap();
            }
            Damage::Remove(f) => std::fs::remove_file(dir.join(f)).unwrap(),
        }
    }
}

/// Truncation sizes of a file of `len` bytes: the edges, around multiples of sled's 512 KiB
/// segment (16 of them, spread over the file), and at seeded random places.
fn truncations(len: u64, random: usize, rng: &mut Rng) -> Vec<u64> {
    const SEGMENT: u64 = 512 << 10;
    let mut sizes = vec![0, 1, 7, 8, 16, 20, 64, 511, 4096, len - 1, len / 2];
    let segments = len / SEGMENT;
    for k in 1..=16.min(segments) {
        let boundary = SEGMENT * (k * segments / 16.min(segments));
        sizes.extend([boundary - 1, boundary, boundary + 1, boundary + 20]);
    }
    sizes.extend((0..random).map(|_| rng.below(len)));
    sizes.retain(|&s| s < len);
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

fn cases(original: &Path) -> Vec<Damage> {
    let mut rng = Rng(0x5EED);
    let mut cases = Vec::new();
    // Per folder of one-value files, how many were picked.
    let mut picked: HashMap<PathBuf, usize> = HashMap::new();
    for f in files(original) {
        let len = std::fs::metadata(original.join(&f)).unwrap().len();
        if len == 0 {
            continue;
        }
        if f.starts_with("blobs") || f.starts_with("large") {
            // Each of sled's blobs or of our block files is one value: a few of each folder,
            // each cut, flipped and removed.
            let n = picked.entry(f.parent().unwrap().to_path_buf()).or_default();
            *n += 1;
            if *n <= 4 {
                for size in [0, 1, len / 2, len - 1] {
                    cases.push(Damage::Truncate(f.clone(), size));
                }
                cases.push(Damage::Flip(f.clone(), rng.below(len)));
                cases.push(Damage::Remove(f.clone()));
            }
            continue;
        }
        let is_log = f == Path::new("db");
        let (random_cuts, flips) = if is_log { (40, 24) } else { (4, 4) };
        for size in truncations(len, random_cuts, &mut rng) {
            cases.push(Damage::Truncate(f.clone(), size));
        }
        for _ in 0..flips {
            cases.push(Damage::Flip(f.clone(), rng.below(len)));
        }
        if !is_log {
            cases.push(Damage::Remove(f.clone()));
        }
    }
    assert!(
        picked.contains_key(Path::new("large")),
        "the store has block files to damage"
    );
    cases
}

/// Runs [`damage_cases`] in a child process of this test binary, so that what reaches the
/// real stderr is seen: a caught panic must not print a crash report, and the child must not
/// die of one.
#[test]
fn damaged_database_is_a_typed_error_never_a_panic() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "damage_cases",
            "--include-ignored",
            "--nocapture",
        ])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "the damage cases failed: {stderr}");
    assert!(
        stdout.contains("test damage_cases ... ok"),
        "the child ran the cases"
    );
    assert!(
        !stderr.contains("panicked"),
        "a caught panic leaked its message to stderr:\n{stderr}"
    );
}

#[test]
#[ignore = "run in a child process by damaged_database_is_a_typed_error_never_a_panic"]
fn damage_cases() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original");
    let root = build(&original);
    assert!(
        matches!(check(&original, root), Outcome::Intact),
        "the undamaged store reads back whole"
    );
    let cases = cases(&original);
    println!(
        "{} cases over {:?} ({} bytes)",
        cases.len(),
        files(&original),
        files(&original)
            .iter()
            .map(|f| std::fs::metadata(original.join(f)).unwrap().len())
            .sum::<u64>()
    );
    // The cases are independent (each its own copy): one worker a core.
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let next = AtomicUsize::new(0);
    let mut outcomes: Vec<(usize, Outcome, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some(damage) = cases.get(n) else {
                            return done;
                        };
                        let copy = dir.path().join(format!("case-{n}"));
                        copy_dir(&original, &copy);
                        damage.apply(&copy);
                        let outcome = check(&copy, root);
                        // A failed open, even one sled panicked in, lets go of the files.
                        let still_locked = matches!(&outcome, Outcome::Error(e) if e.starts_with("open:"))
                            && matches!(
                                SledStore::open(&copy),
                                Err(hamt_store_sled::Error::Locked { .. })
                            );
                        std::fs::remove_dir_all(&copy).unwrap();
                        done.push((n, outcome, still_locked));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    outcomes.sort_by_key(|(n, _, _)| *n);
    let mut failures = Vec::new();
    let (mut intact, mut errors, mut at_open) = (0, 0, 0);
    for (n, outcome, still_locked) in &outcomes {
        let damage = &cases[*n];
        println!("{damage:?}: {outcome}");
        match outcome {
            Outcome::Intact => intact += 1,
            Outcome::Error(e) => {
                errors += 1;
                if e.starts_with("open:") {
                    at_open += 1;
                    if *still_locked {
                        failures.push(format!("{damage:?}: still locked after a failed open"));
                    }
                }
            }
            Outcome::Panic(_) | Outcome::Wrong(_) => {
                failures.push(format!("{damage:?}: {outcome}"));
            }
        }
    }
    println!(
        "{intact} intact, {errors} typed errors ({at_open} at open), {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        at_open > 0,
        "damage that sled notices at open must surface as errors"
    );
}
