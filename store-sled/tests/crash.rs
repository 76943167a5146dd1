//! Blocks are durable after `flush`: a writer killed with SIGKILL at random points loses
//! nothing it reported as flushed.
//!
//! The writer is this test binary run again (the ignored test [`crash_writer`], told where to
//! write by environment variables). It writes small HAMTs into one sled store, batch after
//! batch, and prints each root on stdout only after `Hamt::flush` and `SledStore::flush`
//! returned. The test kills it after random delays, reopens the store after every kill and
//! reads back every key of every root any writer printed so far.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::TryStreamExt as _;
use hamt::{Cid, Hamt, HamtReader};
use hamt_store_sled::SledStore;
use hamt_test_support::Rng;

const DB_VAR: &str = "HAMT_SLED_CRASH_DB";
const RUN_VAR: &str = "HAMT_SLED_CRASH_RUN";
const KILLS: usize = 12;

/// The keys and values of batch `batch` of writer run `run`: 10 to 60 keys, values of
/// 1 byte to 8 KiB.
fn batch(run: u64, batch: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(run << 32 | batch);
    let n = 10 + rng.below_usize(51);
    (0..n)
        .map(|i| {
            let len = 1 + rng.below_usize(8 << 10);
            let mut v = Vec::with_capacity(len + 8);
            while v.len() < len {
                v.extend_from_slice(&rng.next_u64().to_le_bytes());
            }
            v.truncate(len);
            (format!("run{run}/batch{batch}/key{i}"), v)
        })
        .collect()
}

/// The writer: only does something when started by [`killed_writers_lose_nothing_flushed`].
#[tokio::test]
#[ignore = "the writer process of killed_writers_lose_nothing_flushed, run by it"]
async fn crash_writer() {
    let (Ok(db), Ok(run)) = (std::env::var(DB_VAR), std::env::var(RUN_VAR)) else {
        eprintln!("crash_writer is started by killed_writers_lose_nothing_flushed");
        return;
    };
    let run: u64 = run.parse().unwrap();
    let store = Arc::new(SledStore::open(db).unwrap());
    for b in 0..u64::MAX {
        let mut map = Hamt::new(store.clone());
        map.extend(batch(run, b)).await.unwrap();
        let root = map.flush().await.unwrap();
        store.flush().await.unwrap();
        // One write(2) of a short line to a pipe: the test sees all of it or none.
        println!("durable {root} {run} {b}");
    }
}

/// Reads every key of `root` and checks it against batch `b` of run `run`.
async fn verify(store: &Arc<SledStore>, root: Cid, run: u64, b: u64) {
    let reader = HamtReader::open(store.clone(), root)
        .await
        .unwrap_or_else(|e| panic!("root {root} (run {run}, batch {b}) printed durable: {e}"));
    let read: HashMap<String, bytes::Bytes> = reader
        .iter()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("root {root} (run {run}, batch {b}) reads back: {e}"));
    let expected = batch(run, b);
    assert_eq!(read.len(), expected.len(), "keys of root {root}");
    for (k, v) in expected {
        assert_eq!(read.get(&k).map(|r| &r[..]), Some(&v[..]), "{k} of {root}");
    }
}

#[tokio::test]
async fn killed_writers_lose_nothing_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    println!("seed {seed}");
    let mut rng = Rng(u64::try_from(seed % u128::from(u64::MAX)).unwrap());
    let exe = std::env::current_exe().unwrap();
    let mut durable: Vec<(Cid, u64, u64)> = Vec::new();
    for run in 0..KILLS as u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_writer",
                "--ignored",
                "--nocapture",
                "--quiet",
            ])
            .env(DB_VAR, &db)
            .env(RUN_VAR, run.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Read the writer's lines while it runs, so a full pipe never blocks it.
        let stdout = child.stdout.take().unwrap();
        let lines = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut lines = Vec::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 {
                if line.ends_with('\n') {
                    lines.push(std::mem::take(&mut line));
                }
            }
            lines
        });
        let delay = Duration::from_millis(150 + rng.below(650));
        std::thread::sleep(delay);
        assert!(
            child.try_wait().unwrap().is_none(),
            "writer {run} stopped before it was killed"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let printed: Vec<(Cid, u64, u64)> = lines
            .join()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("durable "))
            .map(|l| {
                let mut parts = l.split_whitespace();
                let root: Cid = parts.next().unwrap().parse().unwrap();
                let run = parts.next().unwrap().parse().unwrap();
                let b = parts.next().unwrap().parse().unwrap();
                (root, run, b)
            })
            .collect();
        println!(
            "writer {run} killed after {delay:?}, {} roots durable",
            printed.len()
        );
        durable.extend(printed);

        let store = Arc::new(
            SledStore::open(&db)
                .unwrap_or_else(|e| panic!("the store opens after writer {run} was killed: {e}")),
        );
        for &(root, run, b) in &durable {
            verify(&store, root, run, b).await;
        }
    }
    assert!(
        durable.len() >= KILLS,
        "only {} roots were written in {KILLS} runs: the writers did too little for the \
         kills to mean anything",
        durable.len()
    );
}
