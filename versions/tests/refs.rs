//! Every ref store against the same checks: compare-and-swap semantics, listing, races.
//! The S3 store runs against the S3 server `cargo xtask test` starts (moto), and fails
//! without it.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use hamt::{Cid, Codec, HashAlg};
use hamt_versions::{
    Error, MemoryRefStore, ObjectRefStore, RefKind, RefName, RefStore, SledRefStore,
};

fn cid(n: u8) -> Cid {
    HashAlg::Blake3.cid(Codec::DagCbor, &[n])
}

async fn check(refs: Arc<dyn RefStore>) {
    let main = RefName::branch("main").unwrap();
    let dev = RefName::branch("team/dev").unwrap();
    let v1 = RefName::tag("v1").unwrap();
    assert_eq!(refs.get(&main).await.unwrap(), None);
    refs.compare_and_swap(&main, None, Some(cid(1)))
        .await
        .unwrap();
    assert_eq!(refs.get(&main).await.unwrap(), Some(cid(1)));
    // A create over an existing ref, a move from a stale value: conflicts naming the truth.
    for expected in [None, Some(cid(9))] {
        let err = refs
            .compare_and_swap(&main, expected, Some(cid(2)))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::RefConflict { actual: Some(a), expected: e, .. } if *a == cid(1) && *e == expected),
            "{err}"
        );
    }
    assert_eq!(
        refs.get(&main).await.unwrap(),
        Some(cid(1)),
        "a lost race changes nothing"
    );
    refs.compare_and_swap(&main, Some(cid(1)), Some(cid(2)))
        .await
        .unwrap();
    refs.compare_and_swap(&dev, None, Some(cid(3)))
        .await
        .unwrap();
    refs.compare_and_swap(&v1, None, Some(cid(4)))
        .await
        .unwrap();
    let branches = refs.list(RefKind::Branch).await.unwrap();
    assert_eq!(
        branches,
        vec![(main.clone(), cid(2)), (dev.clone(), cid(3))]
    );
    assert_eq!(
        refs.list(RefKind::Tag).await.unwrap(),
        vec![(v1.clone(), cid(4))]
    );
    // Deleting is conditional too, and a deleted ref can be made again.
    let err = refs
        .compare_and_swap(&dev, Some(cid(1)), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RefConflict { .. }), "{err}");
    refs.compare_and_swap(&dev, Some(cid(3)), None)
        .await
        .unwrap();
    assert_eq!(refs.get(&dev).await.unwrap(), None);
    assert_eq!(
        refs.list(RefKind::Branch).await.unwrap(),
        vec![(main.clone(), cid(2))]
    );
    let err = refs
        .compare_and_swap(&dev, Some(cid(3)), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RefConflict { actual: None, .. }),
        "{err}"
    );
    refs.compare_and_swap(&dev, None, Some(cid(5)))
        .await
        .unwrap();
    assert_eq!(refs.get(&dev).await.unwrap(), Some(cid(5)));

    // Sixteen writers race to move one branch from the same value: exactly one wins.
    let race = RefName::branch("race").unwrap();
    refs.compare_and_swap(&race, None, Some(cid(0)))
        .await
        .unwrap();
    let tasks: Vec<_> = (10..26u8)
        .map(|n| {
            let refs = refs.clone();
            let race = race.clone();
            tokio::spawn(async move {
                refs.compare_and_swap(&race, Some(cid(0)), Some(cid(n)))
                    .await
            })
        })
        .collect();
    let mut won = Vec::new();
    for (n, task) in (10..26u8).zip(tasks) {
        match task.await.unwrap() {
            Ok(()) => won.push(n),
            Err(Error::RefConflict { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won.len(), 1, "winners: {won:?}");
    assert_eq!(refs.get(&race).await.unwrap(), Some(cid(won[0])));
}

#[tokio::test]
async fn memory_refs() {
    check(Arc::new(MemoryRefStore::new())).await;
}

#[tokio::test]
async fn sled_refs_and_they_persist() {
    let dir = tempfile::tempdir().unwrap();
    let store = hamt_store_sled::SledStore::open(dir.path().join("db")).unwrap();
    check(Arc::new(SledRefStore::new(&store).unwrap())).await;
    drop(store);
    let store = hamt_store_sled::SledStore::open(dir.path().join("db")).unwrap();
    let refs = SledRefStore::new(&store).unwrap();
    assert_eq!(
        refs.get(&RefName::tag("v1").unwrap()).await.unwrap(),
        Some(cid(4))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_refs_with_conditional_puts() {
    let endpoint = hamt_test_support::required_env("HAMT_TEST_S3_ENDPOINT");
    let bucket = hamt_test_support::required_env("HAMT_TEST_S3_BUCKET");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let url = format!("s3://{bucket}/refs-test-{nanos}?endpoint={endpoint}");
    let store = hamt_store_s3::S3Store::from_url(&url).unwrap();
    check(Arc::new(ObjectRefStore::for_store(&store))).await;
    // Another process's view of the same prefix sees the same refs.
    let again = hamt_store_s3::S3Store::from_url(&url).unwrap();
    let refs = ObjectRefStore::for_store(&again);
    assert_eq!(
        refs.get(&RefName::tag("v1").unwrap()).await.unwrap(),
        Some(cid(4))
    );
}
