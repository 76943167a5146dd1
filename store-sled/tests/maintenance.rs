//! Listing and deleting blocks, and tables kept beside the blocks, on real sled files.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use hamt::{BlockStore, Codec, Error};
use hamt_store_sled::SledStore;

#[tokio::test]
async fn blocks_are_listed_with_their_sizes_and_deleted_small_and_large() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = SledStore::open(&path).unwrap();
    let small = store
        .put(Codec::Raw, Bytes::from_static(b"small"))
        .await
        .unwrap();
    let other = store
        .put(Codec::Raw, Bytes::from_static(b"other"))
        .await
        .unwrap();
    let big = vec![7u8; (1 << 20) + 10];
    let large = store
        .put(Codec::Raw, Bytes::from(big.clone()))
        .await
        .unwrap();
    let mut listed = store.list_blocks().unwrap();
    listed.sort();
    let mut want = vec![(small, 5), (other, 5), (large, big.len() as u64)];
    want.sort();
    assert_eq!(listed, want);

    let freed = store.delete_blocks(&[small, large, small]).unwrap();
    assert_eq!(freed, 5 + big.len() as u64);
    assert!(matches!(
        store.get(&small).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.get(&large).await,
        Err(Error::NotFound { .. })
    ));
    assert!(!store.has(&large).await.unwrap());
    assert_eq!(store.list_blocks().unwrap(), vec![(other, 5)]);
    assert_eq!(
        std::fs::read_dir(path.join("large")).unwrap().count(),
        0,
        "the large block's file is gone"
    );
    store.flush().await.unwrap();
    drop(store);
    let store = SledStore::open(&path).unwrap();
    assert_eq!(store.list_blocks().unwrap(), vec![(other, 5)]);
    // A block deleted can be stored again.
    store.put(Codec::Raw, Bytes::from(big)).await.unwrap();
    assert_eq!(store.list_blocks().unwrap().len(), 2);
}

#[tokio::test]
async fn tables_swap_atomically_persist_and_are_not_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = SledStore::open(&path).unwrap();
    for reserved in ["blocks", "large"] {
        assert!(matches!(
            store.table(reserved),
            Err(Error::InvalidConfig(_))
        ));
    }
    let refs = store.table("refs").unwrap();
    assert_eq!(
        refs.compare_and_swap(b"heads/main", None, Some(b"a"))
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        refs.compare_and_swap(b"heads/main", None, Some(b"b"))
            .unwrap(),
        Err(Some(b"a".to_vec())),
        "a create over an existing record fails with its value"
    );
    assert_eq!(
        refs.compare_and_swap(b"heads/main", Some(b"x"), Some(b"b"))
            .unwrap(),
        Err(Some(b"a".to_vec()))
    );
    assert_eq!(
        refs.compare_and_swap(b"heads/main", Some(b"a"), Some(b"b"))
            .unwrap(),
        Ok(())
    );
    refs.insert(b"tags/v1", b"t").unwrap();
    refs.insert(b"other", b"o").unwrap();
    assert_eq!(
        refs.scan_prefix(b"heads/").unwrap(),
        vec![(b"heads/main".to_vec(), b"b".to_vec())]
    );
    refs.remove(b"other").unwrap();
    assert_eq!(refs.get(b"other").unwrap(), None);
    assert!(
        store.list_blocks().unwrap().is_empty(),
        "records are not blocks"
    );
    refs.flush().await.unwrap();
    drop((refs, store));
    let store = SledStore::open(&path).unwrap();
    let refs = store.table("refs").unwrap();
    assert_eq!(refs.get(b"heads/main").unwrap(), Some(b"b".to_vec()));
    assert_eq!(refs.get(b"tags/v1").unwrap(), Some(b"t".to_vec()));
}
