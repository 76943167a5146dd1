//! Versions end to end: commits and history, revisions, races and rebases, merges, Zarr
//! conflicts, expiry and garbage collection (sled on disk, S3 on the server `cargo xtask
//! test` starts).

#![allow(clippy::unwrap_used)]
// Test scenarios read best as one story with short names for the writers.
#![allow(clippy::many_single_char_names, clippy::too_many_lines)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hamt::{BlockStore, Change, Cid, Hamt, HamtReader, MemoryStore};
use hamt_versions::{
    CommitOptions, Error, GcOptions, MemoryRefStore, Merged, ObjectRefStore, RefKind, Repo,
    S3Sweep, Session, SledRefStore, SledSweep,
};

fn memory_repo() -> Repo {
    Repo::new(
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryRefStore::new()),
    )
}

/// `root` with `edits` applied (`None` removes).
async fn write(store: &Arc<dyn BlockStore>, root: Cid, edits: &[(&str, Option<&str>)]) -> Cid {
    let mut map = Hamt::open(store.clone(), root).await.unwrap();
    for (k, v) in edits {
        match v {
            Some(v) => {
                map.insert(k, v.as_bytes().to_vec()).await.unwrap();
            }
            None => {
                map.remove(k).await.unwrap();
            }
        }
    }
    map.flush().await.unwrap()
}

async fn get(store: &Arc<dyn BlockStore>, root: Cid, key: &str) -> Option<String> {
    let reader = HamtReader::open(store.clone(), root).await.unwrap();
    reader
        .get(key)
        .await
        .unwrap()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
}

fn opts() -> CommitOptions {
    CommitOptions::default()
}

#[tokio::test]
async fn commits_log_their_changed_keys_and_revisions_resolve() {
    let repo = memory_repo();
    let store = repo.store().clone();
    let empty = repo.empty_root().await.unwrap();
    let r1 = write(&store, empty, &[("a", Some("1")), ("b", Some("1"))]).await;
    let c1 = repo
        .commit("main", r1, None, "first", &opts())
        .await
        .unwrap();
    let r2 = write(
        &store,
        r1,
        &[("a", Some("2")), ("b", None), ("c", Some("3"))],
    )
    .await;
    let mut o = opts();
    o.author = Some("alice".into());
    o.metadata.insert("job".into(), "42".into());
    let c2 = repo
        .commit("main", r2, Some(c1.commit), "second", &o)
        .await
        .unwrap();
    assert_eq!(repo.head("main").await.unwrap(), Some(c2.commit));

    let log = repo.log(c2.commit, None, true).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].commit.message, "second");
    assert_eq!(log[0].commit.author.as_deref(), Some("alice"));
    assert_eq!(log[0].commit.metadata["job"], "42");
    assert_eq!(log[0].commit.parents, vec![c1.commit]);
    let keys = |e: &hamt_versions::LogEntry| -> Vec<String> {
        e.changes
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{}{}",
                    match c {
                        Change::Added { .. } => '+',
                        Change::Removed { .. } => '-',
                        Change::Modified { .. } => '~',
                    },
                    c.key()
                )
            })
            .collect()
    };
    assert_eq!(keys(&log[0]), ["~a", "-b", "+c"]);
    assert_eq!(keys(&log[1]), ["+a", "+b"]);
    assert_eq!(repo.log(c2.commit, Some(1), false).await.unwrap().len(), 1);

    repo.create_tag("v1", c1.commit).await.unwrap();
    let at = |commit: Cid, root: Cid| hamt_versions::Revision {
        commit: Some(commit),
        root,
    };
    assert_eq!(repo.resolve("main").await.unwrap(), at(c2.commit, r2));
    assert_eq!(repo.resolve("main~1").await.unwrap(), at(c1.commit, r1));
    assert_eq!(repo.resolve("v1").await.unwrap(), at(c1.commit, r1));
    assert_eq!(
        repo.resolve(&c2.commit.to_string()).await.unwrap(),
        at(c2.commit, r2)
    );
    assert_eq!(
        repo.resolve(&format!("{}~1", c2.commit)).await.unwrap(),
        at(c1.commit, r1)
    );
    let bare = repo.resolve(&r1.to_string()).await.unwrap();
    assert_eq!((bare.commit, bare.root), (None, r1));
    for bad in ["main~2", "nope", "v1~5", &format!("{r1}~1"), "bafynotacid"] {
        let err = repo.resolve(bad).await.unwrap_err();
        assert!(matches!(err, Error::UnknownRevision { .. }), "{bad}: {err}");
        assert!(err.is_not_found());
    }

    // A commit's links are its root and parents, so a DAG walk from it (a CAR export)
    // carries every version.
    let links = hamt::dag::links(&c2.commit, &store.get(&c2.commit).await.unwrap()).unwrap();
    assert_eq!(
        links.iter().copied().collect::<HashSet<_>>(),
        HashSet::from([r2, c1.commit])
    );
    let mut car = Vec::new();
    hamt::car::export_car(&store, c2.commit, futures::io::Cursor::new(&mut car))
        .await
        .unwrap();
    let copy = Arc::new(MemoryStore::new());
    let mut reader = hamt::car::CarReader::new(futures::io::Cursor::new(car))
        .await
        .unwrap();
    while let Some((cid, data)) = reader.next_block().await.unwrap() {
        copy.put_keyed(&cid, data).await.unwrap();
    }
    let copy: Arc<dyn BlockStore> = copy;
    let again = Repo::new(copy.clone(), Arc::new(MemoryRefStore::new()));
    assert_eq!(
        again.log(c2.commit, None, true).await.unwrap(),
        log,
        "history travels in a CAR"
    );
    assert_eq!(get(&copy, r1, "b").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn branches_tags_and_resets_never_overwrite_silently() {
    let repo = memory_repo();
    let store = repo.store().clone();
    let r1 = write(
        &store,
        repo.empty_root().await.unwrap(),
        &[("k", Some("1"))],
    )
    .await;
    let c1 = repo
        .commit("main", r1, None, "one", &opts())
        .await
        .unwrap()
        .commit;
    let r2 = write(&store, r1, &[("k", Some("2"))]).await;
    let c2 = repo
        .commit("main", r2, Some(c1), "two", &opts())
        .await
        .unwrap()
        .commit;
    // A stale expected head loses and changes nothing.
    let err = repo
        .commit("main", r2, Some(c1), "stale", &opts())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RefConflict { actual: Some(a), .. } if a == c2),
        "{err}"
    );
    assert!(err.is_temporary());
    let err = repo
        .commit("main", r2, None, "as if new", &opts())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RefConflict { .. }), "{err}");

    repo.create_branch("dev", c1).await.unwrap();
    assert!(matches!(
        repo.create_branch("dev", c2).await,
        Err(Error::RefConflict { .. })
    ));
    assert!(matches!(
        repo.create_branch("x", r1).await,
        Err(Error::NotACommit { .. })
    ));
    assert_eq!(repo.reset_branch("dev", c2, Some(c1)).await.unwrap(), c1);
    assert!(matches!(
        repo.reset_branch("dev", c1, Some(c1)).await,
        Err(Error::RefConflict { .. })
    ));
    repo.create_tag("v1", c1).await.unwrap();
    let err = repo.create_tag("v1", c2).await.unwrap_err();
    assert!(
        matches!(err, Error::TagExists { at, .. } if at == c1),
        "{err}"
    );
    let names = |v: Vec<(hamt_versions::RefName, Cid)>| -> Vec<String> {
        v.into_iter().map(|(n, _)| n.name().to_owned()).collect()
    };
    assert_eq!(
        names(repo.list(RefKind::Branch).await.unwrap()),
        ["dev", "main"]
    );
    assert_eq!(names(repo.list(RefKind::Tag).await.unwrap()), ["v1"]);
    assert_eq!(repo.delete_tag("v1").await.unwrap(), c1);
    assert!(matches!(
        repo.delete_tag("v1").await,
        Err(Error::RefNotFound { .. })
    ));
    assert!(matches!(
        repo.delete_branch("dev", Some(c1)).await,
        Err(Error::RefConflict { .. })
    ));
    assert_eq!(repo.delete_branch("dev", None).await.unwrap(), c2);
    assert_eq!(repo.head("dev").await.unwrap(), None);
}

#[tokio::test]
async fn a_commit_that_lost_a_race_rebases_or_names_the_conflict() {
    let repo = memory_repo();
    let store = repo.store().clone();
    let base: Vec<(String, String)> = (0..2000)
        .map(|i| (format!("t/c/{i}"), "0".into()))
        .collect();
    let mut map = Hamt::new(store.clone());
    for (k, v) in &base {
        map.insert(k, v.clone().into_bytes()).await.unwrap();
    }
    map.insert(
        "t/zarr.json",
        br#"{"node_type":"array","shape":[2000]}"#.to_vec(),
    )
    .await
    .unwrap();
    let root = map.flush().await.unwrap();
    repo.commit("main", root, None, "base", &opts())
        .await
        .unwrap();

    let mut a = Session::open(&repo, "main").await.unwrap();
    let mut b = Session::open(&repo, "main").await.unwrap();
    let mut c = Session::open(&repo, "main").await.unwrap();
    a.set_root(write(&store, a.root(), &[("t/c/1", Some("a"))]).await);
    b.set_root(write(&store, b.root(), &[("t/c/2", Some("b")), ("t/c/3", None)]).await);
    c.set_root(
        write(
            &store,
            c.root(),
            &[(
                "t/zarr.json",
                Some(r#"{"node_type":"array","shape":[3000]}"#),
            )],
        )
        .await,
    );
    let first = a.commit("a", &opts()).await.unwrap();
    assert_eq!(first.rebased, 0);
    let second = b.commit("b", &opts()).await.unwrap();
    assert_eq!(second.rebased, 1, "b lost the race and rebased on a");
    assert_eq!(second.parent, Some(first.commit));
    assert_eq!(
        get(&store, second.root, "t/c/1").await.as_deref(),
        Some("a")
    );
    assert_eq!(
        get(&store, second.root, "t/c/2").await.as_deref(),
        Some("b")
    );
    assert_eq!(get(&store, second.root, "t/c/3").await, None);
    // The merged tree is the one a fresh build of the contents gives.
    let mut fresh = Hamt::new(store.clone());
    for (k, v) in &base {
        let v = match k.as_str() {
            "t/c/1" => "a",
            "t/c/2" => "b",
            "t/c/3" => continue,
            _ => v,
        };
        fresh.insert(k, v.as_bytes().to_vec()).await.unwrap();
    }
    fresh
        .insert(
            "t/zarr.json",
            br#"{"node_type":"array","shape":[2000]}"#.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(fresh.flush().await.unwrap(), second.root);
    // c changed other keys: it rebases over both.
    assert_eq!(c.commit("c", &opts()).await.unwrap().rebased, 1);

    // Two writers resizing one array differently conflict, and the message names it.
    let mut d = Session::open(&repo, "main").await.unwrap();
    let mut e = Session::open(&repo, "main").await.unwrap();
    d.set_root(
        write(
            &store,
            d.root(),
            &[(
                "t/zarr.json",
                Some(r#"{"node_type":"array","shape":[4000]}"#),
            )],
        )
        .await,
    );
    e.set_root(
        write(
            &store,
            e.root(),
            &[
                (
                    "t/zarr.json",
                    Some(r#"{"node_type":"array","shape":[5000]}"#),
                ),
                ("t/c/9", Some("e")),
            ],
        )
        .await,
    );
    let head = d.commit("d", &opts()).await.unwrap().commit;
    let err = e.commit("e", &opts()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, Error::MergeConflict { conflicts, metadata } if conflicts.len() == 1 && metadata[0].path == "t"),
        "{text}"
    );
    assert!(
        text.contains("zarr array \"t\": its metadata (t/zarr.json) was changed differently on both sides (shape [5000] here, [4000] there)"),
        "{text}"
    );
    assert_eq!(
        repo.head("main").await.unwrap(),
        Some(head),
        "the loser wrote nothing"
    );
}

#[tokio::test]
async fn forks_merge_back_and_branches_merge() {
    let repo = memory_repo();
    let store = repo.store().clone();
    let mut session = Session::open(&repo, "main").await.unwrap();
    let forks: Vec<_> = (0..4).map(|_| session.fork()).collect();
    let mut written = Vec::new();
    for (i, fork) in forks.into_iter().enumerate() {
        let root = write(
            &store,
            fork.root,
            &[(&format!("chunk/{i}"), Some("x")), ("shared", Some("same"))],
        )
        .await;
        written.push(fork.with_root(root));
    }
    session.merge(&written).await.unwrap();
    let done = session.commit("four writers", &opts()).await.unwrap();
    let reader = HamtReader::open(store.clone(), done.root).await.unwrap();
    assert_eq!(reader.len().await.unwrap(), 5);
    assert!(!session.has_changes());

    let clash = [session.fork(), session.fork()];
    let a = clash[0].with_root(write(&store, clash[0].root, &[("shared", Some("a"))]).await);
    let b = clash[1].with_root(write(&store, clash[1].root, &[("shared", Some("b"))]).await);
    let before = session.root();
    assert!(matches!(
        session.merge(&[a, b]).await,
        Err(Error::MergeConflict { .. })
    ));
    assert_eq!(
        session.root(),
        before,
        "a failed merge leaves the session as it was"
    );

    let main = done.commit;
    repo.create_branch("dev", main).await.unwrap();
    let mut dev = Session::open(&repo, "dev").await.unwrap();
    dev.set_root(write(&store, dev.root(), &[("dev", Some("1"))]).await);
    let dev_head = dev.commit("on dev", &opts()).await.unwrap().commit;
    assert_eq!(
        repo.merge_into("dev", main, "m", &opts()).await.unwrap(),
        Merged::UpToDate(dev_head)
    );
    assert_eq!(
        repo.merge_into("main", dev_head, "m", &opts())
            .await
            .unwrap(),
        Merged::FastForward(dev_head)
    );
    let mut m = Session::open(&repo, "main").await.unwrap();
    m.set_root(write(&store, m.root(), &[("main", Some("1"))]).await);
    m.commit("on main", &opts()).await.unwrap();
    dev.set_root(write(&store, dev.root(), &[("dev2", Some("1"))]).await);
    let dev_head = dev.commit("more dev", &opts()).await.unwrap().commit;
    let Merged::Merged(merge) = repo
        .merge_into("main", dev_head, "merge dev", &opts())
        .await
        .unwrap()
    else {
        panic!("a merge commit was due")
    };
    let info = repo.commit_info(&merge).await.unwrap();
    assert_eq!(info.parents.len(), 2);
    assert_eq!(info.parents[1], dev_head);
    for key in ["main", "dev", "dev2", "chunk/3"] {
        assert!(get(&store, info.root, key).await.is_some(), "{key}");
    }
}

/// A history of `n` commits on `main`, one key each, `step` ms apart from `t0`.
async fn history(repo: &Repo, n: usize, t0: i64, step: i64) -> Vec<(Cid, Cid)> {
    let store = repo.store().clone();
    let mut root = repo.empty_root().await.unwrap();
    let mut head = None;
    let mut out = Vec::new();
    for i in 0..n {
        root = write(
            &store,
            root,
            &[(&format!("k{i}"), Some(&format!("value {i}")))],
        )
        .await;
        let o = CommitOptions {
            time_ms: Some(t0 + step * i64::try_from(i).unwrap()),
            ..opts()
        };
        let c = repo
            .commit("main", root, head, &format!("c{i}"), &o)
            .await
            .unwrap()
            .commit;
        head = Some(c);
        out.push((c, root));
    }
    out
}

#[tokio::test]
async fn expiry_rewrites_the_kept_history_and_sled_gc_takes_the_rest_after_grace() {
    let dir = tempfile::tempdir().unwrap();
    let sled = hamt_store_sled::SledStore::open(dir.path().join("db")).unwrap();
    let store: Arc<dyn BlockStore> = Arc::new(sled.clone());
    let repo = Repo::new(store.clone(), Arc::new(SledRefStore::new(&sled).unwrap()));
    let commits = history(&repo, 6, 1_000_000, 1000).await;
    // A tree written and not committed yet: a writer in progress.
    let pending = write(
        &store,
        commits[5].1,
        &[("pending", Some("not committed yet"))],
    )
    .await;

    let expired = repo.expire("main", 1_000_000 + 3000).await.unwrap();
    assert_eq!((expired.kept, expired.expired), (3, 3));
    let log = repo.log(expired.head, None, false).await.unwrap();
    let messages: Vec<&str> = log.iter().map(|e| e.commit.message.as_str()).collect();
    assert_eq!(messages, ["c5", "c4", "c3"]);
    assert!(log[2].commit.parents.is_empty());
    assert_eq!(log[0].commit.root, commits[5].1, "the data is the same");
    assert_eq!(
        hamt::dag::first_missing(store.as_ref(), [expired.head])
            .await
            .unwrap(),
        None
    );

    let sweep = SledSweep::new(&sled).unwrap();
    let now = SystemTime::now();
    let at = |t: SystemTime| GcOptions {
        grace: Duration::from_hours(1),
        now: Some(t),
        ..GcOptions::default()
    };
    let dry = repo
        .gc(
            &sweep,
            &GcOptions {
                dry_run: true,
                ..at(now)
            },
        )
        .await
        .unwrap();
    assert_eq!(dry.sweep.deleted, 0, "nothing was seen unreachable before");
    assert!(dry.sweep.pending > 0);
    let first = repo.gc(&sweep, &at(now)).await.unwrap();
    assert_eq!(first.sweep.deleted, 0, "the first sighting only marks");
    assert_eq!(first.sweep.pending, dry.sweep.pending);
    let soon = repo
        .gc(&sweep, &at(now + Duration::from_mins(1)))
        .await
        .unwrap();
    assert_eq!(soon.sweep.deleted, 0, "within grace");
    // The writer commits within grace: its blocks are live again and lose their marks.
    repo.commit("main", pending, Some(expired.head), "late", &opts())
        .await
        .unwrap();
    let later = now + Duration::from_hours(2);
    let dry = repo
        .gc(
            &sweep,
            &GcOptions {
                dry_run: true,
                list: true,
                ..at(later)
            },
        )
        .await
        .unwrap();
    let gone = repo.gc(&sweep, &at(later)).await.unwrap();
    assert_eq!(gone.sweep.deleted, dry.sweep.deleted);
    assert_eq!(gone.sweep.deleted, dry.sweep.listed.len() as u64);
    assert!(
        gone.sweep.deleted >= 3,
        "the old commits at least: {gone:?}"
    );
    let old: HashSet<String> = commits[..5].iter().map(|(c, _)| c.to_string()).collect();
    assert!(
        old.iter().all(|c| dry.sweep.listed.contains(c)),
        "every expired and rewritten commit goes"
    );
    // Everything kept is whole, the late commit's tree included.
    let head = repo.head("main").await.unwrap().unwrap();
    assert_eq!(
        hamt::dag::first_missing(store.as_ref(), [head])
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        get(&store, pending, "pending").await.as_deref(),
        Some("not committed yet")
    );
    assert_eq!(get(&store, pending, "k0").await.as_deref(), Some("value 0"));
    let again = repo.gc(&sweep, &at(later)).await.unwrap();
    assert_eq!((again.sweep.deleted, again.sweep.unreachable), (0, 0));

    let bare = Repo::new(store, Arc::new(MemoryRefStore::new()));
    assert!(matches!(
        bare.gc(&sweep, &at(later)).await,
        Err(Error::GcRefused(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_gc_deletes_packs_that_hold_nothing_live() {
    let endpoint = hamt_test_support::required_env("HAMT_TEST_S3_ENDPOINT");
    let bucket = hamt_test_support::required_env("HAMT_TEST_S3_BUCKET");
    let nanos = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let url = format!("s3://{bucket}/gc-test-{nanos}?endpoint={endpoint}");
    let s3 = hamt_store_s3::S3Store::from_url(&url).unwrap();
    let store: Arc<dyn BlockStore> = Arc::new(s3.clone());
    let repo = Repo::new(store.clone(), Arc::new(ObjectRefStore::for_store(&s3)));
    let empty = repo.empty_root().await.unwrap();
    // Each commit syncs, so each version's new blocks are a pack of their own.
    let garbage = write(&store, empty, &[("only-here", Some("garbage"))]).await;
    store.sync().await.unwrap();
    let r1 = write(&store, empty, &[("a", Some("1"))]).await;
    let c1 = repo
        .commit("main", r1, None, "one", &opts())
        .await
        .unwrap()
        .commit;
    let r2 = write(&store, r1, &[("b", Some("2"))]).await;
    repo.commit("main", r2, Some(c1), "two", &opts())
        .await
        .unwrap();
    let packs = s3.list_packs().await.unwrap().len();

    let sweep = S3Sweep::new(&s3);
    let young = repo
        .gc(
            &sweep,
            &GcOptions {
                grace: Duration::from_hours(1),
                ..GcOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(young.sweep.deleted, 0);
    assert_eq!(young.sweep.pending, 1, "{young:?}");
    let opts_now = GcOptions {
        grace: Duration::ZERO,
        list: true,
        ..GcOptions::default()
    };
    let report = repo.gc(&sweep, &opts_now).await.unwrap();
    assert_eq!(report.sweep.unit, "packs");
    assert_eq!(report.sweep.deleted, 1, "{report:?}");
    assert_eq!(s3.list_packs().await.unwrap().len(), packs - 1);
    assert!(matches!(
        store.get(&garbage).await,
        Err(hamt::Error::NotFound { .. })
    ));
    // The live history is whole, also through a store opened afresh.
    let fresh: Arc<dyn BlockStore> = Arc::new(hamt_store_s3::S3Store::from_url(&url).unwrap());
    let head = repo.head("main").await.unwrap().unwrap();
    assert_eq!(
        hamt::dag::first_missing(fresh.as_ref(), [head])
            .await
            .unwrap(),
        None
    );
    assert_eq!(get(&fresh, r2, "a").await.as_deref(), Some("1"));
}
