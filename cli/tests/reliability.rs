//! What the `hamt` command guarantees against crashes and bad input: a printed root is
//! durable, incomplete CARs and unexportable keys are refused before anything is written,
//! imports never reach out of their directory, and errors are typed for scripts.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use futures::executor::block_on;
use hamt::car::CarWriter;
use hamt::{Cid, Codec, HashAlg};

mod common;
use common::{fails, files_under, hamt, ok, sample};

fn sled(dir: &Path, name: &str) -> String {
    format!("sled:{}", dir.join(name).display())
}

/// Starts `hamt ARGS`, reads its first line of output (a root), and kills it with SIGKILL
/// at once, before anything it does after printing can run.
fn root_then_kill(store: &str, args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hamt"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("HAMT_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!line.trim().is_empty(), "hamt {args:?} printed no root");
    line.trim().to_owned()
}

/// Every key of `root` exports, and the files equal `expected`.
fn reads_back_whole(store: &str, root: &str, expected: &[(String, Vec<u8>)], scratch: &Path) {
    let out = scratch.join(format!("check-{root}"));
    ok(store, &["export", root, out.to_str().unwrap()]);
    assert_eq!(files_under(&out), expected, "root {root}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_printed_root_survives_a_kill_right_after_it_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let expected = files_under(&sample());
    let sample = sample();
    let car = dir.path().join("map.car");
    let source = sled(dir.path(), "source");
    let base = ok(&source, &["import", sample.to_str().unwrap()]);
    let base = base.trim();
    ok(&source, &["export-car", base, car.to_str().unwrap()]);
    let mut with_new = expected.clone();
    with_new.push(("new/key.txt".into(), b"hello".to_vec()));
    with_new.sort();
    for run in 0..10 {
        // import: every block of the map.
        let store = sled(dir.path(), &format!("import-{run}"));
        let root = root_then_kill(&store, &["import", sample.to_str().unwrap()]);
        reads_back_whole(&store, &root, &expected, dir.path());

        // put and rm on a map made first.
        let store = sled(dir.path(), &format!("edit-{run}"));
        let first = ok(&store, &["import", sample.to_str().unwrap()]);
        let put = root_then_kill(&store, &["put", first.trim(), "new/key.txt", "hello"]);
        reads_back_whole(&store, &put, &with_new, dir.path());
        let removed = root_then_kill(&store, &["rm", &put, "new/key.txt"]);
        reads_back_whole(&store, &removed, &expected, dir.path());

        // import-car into an empty store.
        let store = sled(dir.path(), &format!("car-{run}"));
        let root = root_then_kill(&store, &["import-car", car.to_str().unwrap()]);
        assert_eq!(root, base);
        reads_back_whole(&store, &root, &expected, dir.path());

        // zarr import (the sample directory is a Zarr v3 group).
        let store = sled(dir.path(), &format!("zarr-{run}"));
        let root = root_then_kill(&store, &["zarr", "import", sample.to_str().unwrap()]);
        reads_back_whole(&store, &root, &expected, dir.path());
    }
}

/// A dataset with arrays, for `zarr shard`, written by the real zarr-python peer.
#[test]
fn a_sharded_root_survives_a_kill_and_reads_in_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zarr/tests/python/peer.py");
    let original = dir.path().join("original.zarr");
    hamt_test_support::run_python_peer(&peer, &["write-dir", original.to_str().unwrap()], None);
    let expected = files_under(&original);
    for run in 0..10 {
        let store = sled(dir.path(), &format!("db-{run}"));
        let root = ok(&store, &["zarr", "import", original.to_str().unwrap()]);
        let sharded = root_then_kill(
            &store,
            &["zarr", "shard", root.trim(), "--chunks-per-shard", "4"],
        );
        // `ls` and `export` read the sharded layout too, and give the same files back.
        let keys = ok(&store, &["ls", &sharded]);
        assert_eq!(
            keys.lines().collect::<Vec<_>>(),
            expected.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()
        );
        reads_back_whole(&store, &sharded, &expected, dir.path());
    }
    let store = sled(dir.path(), "db-0");
    let out = dir.path().join("zarr-export");
    let root = ok(&store, &["zarr", "import", original.to_str().unwrap()]);
    let sharded = ok(
        &store,
        &["zarr", "shard", root.trim(), "--chunks-per-shard", "4"],
    );
    ok(
        &store,
        &["zarr", "export", sharded.trim(), out.to_str().unwrap()],
    );
    assert_eq!(files_under(&out), expected);
}

#[test]
fn an_encrypted_dataset_without_its_key_exports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = sled(dir.path(), "db");
    let key = dir.path().join("key");
    std::fs::write(&key, "11".repeat(32)).unwrap();
    let sealed = ok(
        &store,
        &[
            "zarr",
            "import",
            sample().to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ],
    );
    let out = dir.path().join("out");
    fails(
        &store,
        &["zarr", "export", sealed.trim(), out.to_str().unwrap()],
        1,
        "--key-file",
    );
    assert!(!out.exists(), "ciphertext was exported");
    let json = hamt(&store, &["--json", "zarr", "info", sealed.trim()]);
    let error: serde_json::Value = serde_json::from_slice(&json.stderr).unwrap();
    assert_eq!(error["error"]["kind"], "key_required");
}

/// Writes a CAR with `roots` in its header and `blocks` as its sections.
fn write_car(path: &Path, roots: Vec<Cid>, blocks: &[(Cid, Vec<u8>)]) {
    let bytes = block_on(async {
        let mut car = CarWriter::new(futures::io::Cursor::new(Vec::new()), roots)
            .await
            .unwrap();
        for (cid, data) in blocks {
            car.write(cid, data).await.unwrap();
        }
        car.finish().await.unwrap().into_inner()
    });
    std::fs::write(path, bytes).unwrap();
}

/// The sections of a CAR `hamt export-car` wrote, in order.
fn sections(path: &Path) -> (Vec<Cid>, Vec<(Cid, Vec<u8>)>) {
    block_on(async {
        let bytes = std::fs::read(path).unwrap();
        let mut car = hamt::car::CarReader::new(&bytes[..]).await.unwrap();
        let roots = car.roots().to_vec();
        let mut blocks = Vec::new();
        while let Some((cid, data)) = car.next_block().await.unwrap() {
            blocks.push((cid, data.to_vec()));
        }
        (roots, blocks)
    })
}

#[test]
fn incomplete_cars_are_refused_with_the_missing_block() {
    let dir = tempfile::tempdir().unwrap();
    let source = sled(dir.path(), "source");
    let root = ok(&source, &["import", sample().to_str().unwrap()]);
    let root = root.trim();
    let whole = dir.path().join("whole.car");
    ok(&source, &["export-car", root, whole.to_str().unwrap()]);
    let (roots, blocks) = sections(&whole);

    // A header-only CAR, a CAR cut at a section boundary, and one whose header names a root
    // that is not in it.
    let header_only = dir.path().join("header-only.car");
    write_car(&header_only, roots.clone(), &[]);
    let cut = dir.path().join("cut.car");
    write_car(&cut, roots.clone(), &blocks[..blocks.len() - 1]);
    let stranger = HashAlg::Blake3.cid(Codec::DagCbor, b"\x80");
    let foreign_root = dir.path().join("foreign-root.car");
    write_car(&foreign_root, vec![stranger], &blocks);
    let missing_last = blocks.last().unwrap().0.to_string();
    for (i, (car, missing)) in [
        (&header_only, root.to_owned()),
        (&cut, missing_last),
        (&foreign_root, stranger.to_string()),
    ]
    .into_iter()
    .enumerate()
    {
        let store = sled(dir.path(), &format!("into-{i}"));
        let stderr = fails(
            &store,
            &["import-car", car.to_str().unwrap()],
            3,
            "incomplete",
        );
        assert!(
            stderr.contains(&missing),
            "{stderr} does not name {missing}"
        );
        let json = hamt(&store, &["--json", "import-car", car.to_str().unwrap()]);
        let error: serde_json::Value = serde_json::from_slice(&json.stderr).unwrap();
        assert_eq!(error["error"]["kind"], "incomplete_car");
        assert_eq!(error["error"]["exit_code"], 3);
        // Asked for, a partial CAR is taken as it is.
        ok(
            &store,
            &["import-car", "--allow-partial", car.to_str().unwrap()],
        );
    }

    // Blocks the store already holds make a CAR whole: the header-only CAR of a root that
    // is there imports.
    ok(&source, &["import-car", header_only.to_str().unwrap()]);
}

#[test]
fn export_car_of_a_missing_root_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = sled(dir.path(), "db");
    let absent = HashAlg::Blake3.cid(Codec::DagCbor, b"\x80").to_string();
    let file = dir.path().join("out.car");
    fails(
        &store,
        &["export-car", &absent, file.to_str().unwrap()],
        3,
        "not found",
    );
    assert!(!file.exists());
}

#[test]
fn export_refuses_keys_that_collide_or_clash_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = sled(dir.path(), "db");
    let mut root = ok(&store, &["new"]).trim().to_owned();
    for key in ["a/b", "a//b", "a/./b"] {
        root = ok(&store, &["put", &root, key, key]).trim().to_owned();
    }
    let out = dir.path().join("out");
    fails(
        &store,
        &["export", &root, out.to_str().unwrap()],
        1,
        "cannot be exported",
    );
    assert!(!out.exists(), "something was written");

    let mut root = ok(&store, &["new"]).trim().to_owned();
    for key in ["x", "x/y"] {
        root = ok(&store, &["put", &root, key, key]).trim().to_owned();
    }
    let stderr = fails(
        &store,
        &["export", &root, out.to_str().unwrap()],
        1,
        "cannot both be exported",
    );
    assert!(
        stderr.contains("\"x\"") && stderr.contains("\"x/y\""),
        "{stderr}"
    );
    assert!(!out.exists(), "a partial export was left behind");
}

#[cfg(unix)]
#[test]
fn export_does_not_write_through_links_inside_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = sled(dir.path(), "db");
    let root = ok(&store, &["import", sample().to_str().unwrap()]);
    let out = dir.path().join("out");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("temperature")).unwrap();
    fails(
        &store,
        &["export", root.trim(), out.to_str().unwrap()],
        1,
        "symbolic link",
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[cfg(unix)]
#[test]
fn import_leaves_out_links_out_of_the_directory_special_files_and_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    std::fs::write(input.join("sub/kept.txt"), "kept").unwrap();
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, "secret").unwrap();
    std::os::unix::fs::symlink(&outside, input.join("out-link")).unwrap();
    std::os::unix::fs::symlink(input.join("sub/kept.txt"), input.join("in-link")).unwrap();
    std::os::unix::fs::symlink(input.join("sub"), input.join("dir-link")).unwrap();
    let fifo = input.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // The store itself lives inside the directory being imported.
    let store = sled(&input, "db");

    let out = hamt(&store, &["--json", "import", input.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for reason in [
        "links out of the directory",
        "links to directories",
        "FIFOs",
        "the store's own files",
    ] {
        assert!(stderr.contains(reason), "{stderr} lacks {reason:?}");
    }
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["keys"], 2, "{result}");
    assert_eq!(result["skipped"], 4, "{result}");
    let root = result["root"].as_str().unwrap();
    let keys = ok(&store, &["ls", root]);
    assert_eq!(
        keys.lines().collect::<Vec<_>>(),
        ["in-link", "sub/kept.txt"]
    );

    // -v names each path; --follow-symlinks takes the outside file and the linked directory.
    let verbose = hamt(&store, &["import", "-v", input.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&verbose.stderr).contains("out-link"));
    let followed = ok(
        &store,
        &[
            "--json",
            "import",
            "--follow-symlinks",
            input.to_str().unwrap(),
        ],
    );
    let followed: serde_json::Value = serde_json::from_str(&followed).unwrap();
    let keys = ok(&store, &["ls", followed["root"].as_str().unwrap()]);
    assert!(keys.lines().any(|k| k == "out-link"), "{keys}");
    assert!(keys.lines().any(|k| k == "dir-link/kept.txt"), "{keys}");
    // A followed link back to a directory it is in is left out, not walked for ever.
    std::os::unix::fs::symlink(&input, input.join("sub/loop")).unwrap();
    let looped = hamt(
        &store,
        &["import", "--follow-symlinks", input.to_str().unwrap()],
    );
    assert!(looped.status.success());
    assert!(String::from_utf8_lossy(&looped.stderr).contains("links to a directory they are in"));
    assert!(!keys.lines().any(|k| k.starts_with("db/")), "{keys}");
}

#[test]
fn cids_with_trailing_bytes_and_long_keys_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = sled(dir.path(), "db");
    let root = ok(&store, &["new"]).trim().to_owned();
    fails(
        &store,
        &["ls", &format!("{root}aaaaaaaa")],
        1,
        "invalid CID",
    );
    let long = "k".repeat(10_000);
    let stderr = fails(&store, &["get", &root, &long], 3, "not found");
    assert!(
        stderr.len() < 400,
        "the whole key was printed: {} bytes",
        stderr.len()
    );
    let json = hamt(&store, &["--json", "get", &root, "missing"]);
    assert_eq!(json.status.code(), Some(3));
    let error: serde_json::Value = serde_json::from_slice(&json.stderr).unwrap();
    assert_eq!(error["error"]["kind"], "key_not_found");
}

#[test]
fn help_names_the_stores_commands_and_exit_codes() {
    let help = ok("mem:", &["--help"]);
    assert!(help.contains("Exit codes"), "{help}");
    assert!(help.contains(&hamt_registry::usage()), "{help}");
    let zarr = ok("mem:", &["zarr", "--help"]);
    assert!(zarr.contains("shard"), "{zarr}");
    fails("mem:", &["serve", "--concurrency", "0"], 2, "");
    fails("mem:", &["serve", "--timeout", "0"], 2, "");
}

/// An S3 store without credentials fails before any work: no root is printed, and the
/// error says what to set.
#[cfg(feature = "s3")]
#[test]
fn an_s3_store_without_credentials_fails_before_any_work() {
    let endpoint = hamt_test_support::required_env("HAMT_TEST_S3_ENDPOINT");
    let bucket = hamt_test_support::required_env("HAMT_TEST_S3_BUCKET");
    let out = Command::new(env!("CARGO_BIN_EXE_hamt"))
        .args(["--json", "--store"])
        .arg(format!("s3://{bucket}/no-credentials?endpoint={endpoint}"))
        .arg("new")
        .env_remove("HAMT_STORE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "a root was printed: {:?}",
        out.stdout
    );
    let error: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(error["error"]["kind"], "unauthorized", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("AWS_ACCESS_KEY_ID"),
        "{error}"
    );
}
