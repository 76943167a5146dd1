//! `hamt commit|log|branch|tag|merge|expire|gc` and revisions in root arguments, end to end
//! on a real sled database.

#![allow(clippy::unwrap_used)]
// Writers and trees read best with short names.
#![allow(clippy::many_single_char_names)]

use std::process::{Command, Output};

fn hamt(store: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hamt"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("HAMT_REFS")
        .output()
        .unwrap()
}

/// Runs and returns standard output, trimmed; fails the test on a non-zero exit.
fn ok(store: &str, args: &[&str]) -> String {
    let out = hamt(store, args);
    assert!(
        out.status.success(),
        "hamt {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn json(store: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(store, &all)).unwrap()
}

/// The `--json` error of a failing command, and its exit code.
fn fails(store: &str, args: &[&str]) -> (serde_json::Value, i32) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = hamt(store, &all);
    assert!(!out.status.success(), "hamt {args:?} succeeded");
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    (err["error"].clone(), out.status.code().unwrap())
}

#[test]
fn commits_history_refs_and_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sled:{}", dir.path().join("db").display());
    let s = db.as_str();
    let r0 = ok(s, &["new"]);
    let r1 = ok(s, &["put", &r0, "temp/zarr.json", "{}"]);
    let c1 = json(s, &["commit", &r1, "-m", "first"]);
    assert_eq!(c1["root"], r1.as_str());
    assert_eq!(c1["parent"], serde_json::Value::Null);
    // Any root argument takes a revision: `put` on the branch head.
    let r2 = ok(s, &["put", "main", "temp/c/0", "chunk"]);
    let c2 = ok(
        s,
        &[
            "commit", &r2, "-m", "second", "--author", "ada", "--meta", "job=7",
        ],
    );
    assert_eq!(ok(s, &["get", "main", "temp/c/0"]), "chunk");
    assert_eq!(ok(s, &["ls", "main~1"]), "temp/zarr.json");
    assert_eq!(ok(s, &["diff", "main~1", "main"]), "+ temp/c/0");
    assert_eq!(
        ok(s, &["ls", &c2]),
        "temp/c/0\ntemp/zarr.json",
        "a commit CID is its tree"
    );

    let log: Vec<serde_json::Value> = ok(s, &["--json", "log"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["commit"], c2.as_str());
    assert_eq!(log[0]["author"], "ada");
    assert_eq!(log[0]["metadata"]["job"], "7");
    assert_eq!(
        log[0]["changes"],
        serde_json::json!([{"op": "added", "key": "temp/c/0"}])
    );
    assert_eq!(log[1]["parents"], serde_json::json!([]));
    let text = ok(s, &["log", "-n", "1"]);
    assert!(text.starts_with(&format!("commit {c2}\n")), "{text}");
    assert!(
        text.contains("    second\n") && text.contains("    + temp/c/0"),
        "{text}"
    );

    ok(s, &["tag", "create", "v1", "main~1"]);
    assert_eq!(json(s, &["tag", "list"])["v1"], c1["commit"]);
    let (err, code) = fails(s, &["tag", "create", "v1", "main"]);
    assert_eq!((err["kind"].as_str(), code), (Some("tag_exists"), 1));
    ok(s, &["branch", "create", "dev", "v1"]);
    assert_eq!(ok(s, &["ls", "dev"]), "temp/zarr.json");
    ok(s, &["branch", "reset", "dev", "main"]);
    assert_eq!(json(s, &["branch", "list"])["dev"], c2.as_str());
    let (err, code) = fails(s, &["branch", "delete", "dev", "--expect", "v1"]);
    assert_eq!((err["kind"].as_str(), code), (Some("ref_conflict"), 1));
    ok(s, &["branch", "delete", "dev"]);
    let (err, code) = fails(s, &["ls", "dev"]);
    assert_eq!((err["kind"].as_str(), code), (Some("unknown_revision"), 1));
    let (err, code) = fails(s, &["ls", "main~9"]);
    assert_eq!((err["kind"].as_str(), code), (Some("unknown_revision"), 1));

    // A CAR of a branch carries its history: another store reads the log from it alone.
    let car = dir.path().join("main.car");
    ok(s, &["export-car", "main", car.to_str().unwrap()]);
    let other = format!("sled:{}", dir.path().join("other").display());
    assert_eq!(ok(&other, &["import-car", car.to_str().unwrap()]), c2);
    let moved = ok(&other, &["log", &c2]);
    assert!(
        moved.contains(&format!("commit {}", c1["commit"].as_str().unwrap())),
        "{moved}"
    );
}

#[test]
fn racing_commits_rebase_and_conflicts_name_the_array() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sled:{}", dir.path().join("db").display());
    let s = db.as_str();
    let r0 = ok(s, &["new"]);
    let base = ok(
        s,
        &[
            "put",
            &r0,
            "t/zarr.json",
            r#"{"node_type":"array","shape":[1]}"#,
        ],
    );
    let c0 = ok(s, &["commit", &base, "-m", "base"]);
    // Two writers start from c0; the second commits after the first, with --base c0.
    let a = ok(s, &["put", &base, "t/c/0", "a"]);
    let b = ok(s, &["put", &base, "t/c/1", "b"]);
    ok(s, &["commit", &a, "-m", "a", "--base", &c0]);
    let done = json(s, &["commit", &b, "-m", "b", "--base", &c0]);
    assert_eq!(done["rebased"], 1);
    assert_eq!(ok(s, &["ls", "main"]), "t/c/0\nt/c/1\nt/zarr.json");
    let (err, _) = fails(
        s,
        &["commit", &b, "-m", "strict", "--base", &c0, "--no-rebase"],
    );
    assert_eq!(err["kind"], "ref_conflict");

    let head = ok(s, &["log", "-n", "1", "--no-keys"]);
    let head = head
        .lines()
        .next()
        .unwrap()
        .strip_prefix("commit ")
        .unwrap()
        .to_owned();
    let x = ok(
        s,
        &[
            "put",
            "main",
            "t/zarr.json",
            r#"{"node_type":"array","shape":[2]}"#,
        ],
    );
    let y = ok(
        s,
        &[
            "put",
            "main",
            "t/zarr.json",
            r#"{"node_type":"array","shape":[3]}"#,
        ],
    );
    ok(s, &["commit", &x, "-m", "x", "--base", &head]);
    let (err, code) = fails(s, &["commit", &y, "-m", "y", "--base", &head]);
    assert_eq!((err["kind"].as_str(), code), (Some("merge_conflict"), 1));
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains(
            "zarr array \"t\": its metadata (t/zarr.json) was changed differently on both sides"
        ),
        "{message}"
    );

    // Branch merges: dev diverges from main and is merged back with a merge commit.
    ok(s, &["branch", "create", "dev", "main"]);
    let d = ok(s, &["put", "dev", "t/c/5", "d"]);
    ok(s, &["commit", &d, "-b", "dev", "-m", "on dev"]);
    let m = ok(s, &["put", "main", "t/c/6", "m"]);
    ok(s, &["commit", &m, "-m", "on main"]);
    let merged = json(s, &["merge", "dev"]);
    assert_eq!(merged["result"], "merged");
    assert_eq!(ok(s, &["get", "main", "t/c/5"]), "d");
    assert_eq!(ok(s, &["get", "main", "t/c/6"]), "m");
    assert_eq!(json(s, &["merge", "dev"])["result"], "up-to-date");
}

#[test]
fn expire_and_gc_keep_what_refs_need() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sled:{}", dir.path().join("db").display());
    let s = db.as_str();
    let mut root = ok(s, &["new"]);
    for i in 0..4 {
        root = ok(
            s,
            &["put", &root, &format!("k{i}"), &format!("old value {i}")],
        );
        ok(s, &["commit", &root, "-m", &format!("c{i}")]);
    }
    let stray = ok(s, &["put", &root, "stray", "never committed"]);
    // Unreachable: the stray tree's root and value, and the empty tree `new` made. A grace
    // period spares them; a dry run deletes nothing.
    let report = json(s, &["gc", "--grace", "1h"]);
    assert_eq!(
        (report["deleted"].as_u64(), report["pending"].as_u64()),
        (Some(0), Some(3))
    );
    let dry = json(s, &["gc", "--grace", "0s", "--dry-run", "--list"]);
    assert_eq!(dry["deleted"], 3);
    assert!(
        dry["listed"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(stray))
    );
    assert_eq!(ok(s, &["get", &stray, "stray"]), "never committed");
    assert_eq!(json(s, &["gc", "--grace", "0s"])["deleted"], 3);
    let (err, code) = fails(s, &["get", &stray, "stray"]);
    assert_eq!((err["kind"].as_str(), code), (Some("block_not_found"), 3));

    // Everything is newer than an hour ago: nothing expires; everything is older than now.
    assert_eq!(json(s, &["expire", "--before", "1h"])["expired"], 0);
    let future = "2999-01-01T00:00:00Z";
    let expired = json(s, &["expire", "--before", future]);
    assert_eq!(
        (expired["expired"].as_u64(), expired["kept"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(ok(s, &["log", "--no-keys"]).matches("commit ").count(), 1);
    let collected = json(s, &["gc", "--grace", "0s"]);
    assert!(collected["deleted"].as_u64().unwrap() >= 3, "{collected}");
    for i in 0..4 {
        assert_eq!(
            ok(s, &["get", "main", &format!("k{i}")]),
            format!("old value {i}")
        );
    }
    let (err, _) = fails(s, &["--refs", "mem:", "gc", "--grace", "0s"]);
    assert_eq!(
        err["kind"], "gc_refused",
        "no refs in an empty ref store: refused"
    );
}
