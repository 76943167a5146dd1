//! `Dataset`: one way to open a root in either layout, reading the same dataset the same way;
//! encrypted datasets refused without their key; missing blocks told apart.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use hamt::{BlockStore, Bytes, Cid, Codec, HashAlg, MemoryStore};
use hamt_zarr::{
    Dataset, Encryption, EncryptionKey, Error, HamtStore, Layout, ShardedStore, Source,
};

/// The shared test dataset (three variables, three coordinates, a root group) as a HAMT.
async fn hamt_dataset(blocks: &Arc<MemoryStore>, encryption: Option<Encryption>) -> Cid {
    let mut builder = HamtStore::builder(blocks.clone());
    if let Some(encryption) = encryption {
        builder = builder.encryption(encryption);
    }
    let store = Arc::new(builder.build().await.unwrap());
    common::write_dataset(&store, "", 1.0).await;
    store.flush().await.unwrap()
}

fn encryption() -> Encryption {
    Encryption::new(EncryptionKey::from_slice(&[5; 32]).unwrap(), &b"hdr"[..])
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn both_layouts_of_one_dataset_open_and_read_alike() {
    let blocks = Arc::new(MemoryStore::new());
    let hamt_root = hamt_dataset(&blocks, None).await;
    let sharded_root = hamt_zarr::hamt_to_sharded(blocks.clone(), hamt_root, 5)
        .await
        .unwrap();
    let hamt = Arc::new(Dataset::open(blocks.clone(), hamt_root).await.unwrap());
    let sharded = Arc::new(Dataset::open(blocks.clone(), sharded_root).await.unwrap());
    assert_eq!(hamt.layout(), Layout::Hamt);
    assert_eq!(sharded.layout(), Layout::Sharded);
    assert_eq!((hamt.root(), sharded.root()), (hamt_root, sharded_root));
    assert!(hamt.as_hamt().is_some() && hamt.as_sharded().is_none());
    assert_eq!(sharded.as_sharded().unwrap().arrays().len(), 6);

    // The same keys, each with the same value (the converter reuses every block).
    let keys = hamt.keys().await.unwrap();
    assert_eq!(keys.len(), 3 * 19 + 3 * 2 + 1);
    assert_eq!(sharded.keys().await.unwrap(), keys);
    for key in &keys {
        assert_eq!(
            hamt.get_value(key).await.unwrap(),
            sharded.get_value(key).await.unwrap(),
            "{key}"
        );
    }
    assert_eq!(
        sharded.keys_with_prefix("temp/c/0/").await.unwrap(),
        hamt.keys_with_prefix("temp/c/0/").await.unwrap()
    );
    assert_eq!(
        hamt.prefix_size("").await.unwrap(),
        sharded.prefix_size("").await.unwrap()
    );

    // The same info, and zarrs reads the same arrays through either.
    let info = hamt_zarr::dataset_info(&hamt).await.unwrap();
    assert_eq!(hamt_zarr::dataset_info(&sharded).await.unwrap(), info);
    assert_eq!(info.nodes.len(), 7);
    for path in ["temp", "precip", "count", "time"] {
        let want = common::read_array(&hamt, path).await.unwrap();
        assert_eq!(common::read_array(&sharded, path).await.unwrap(), want);
    }

    // And the same directory when exported.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let copied = hamt_zarr::export_dir(&hamt, a.path(), &|_| ())
        .await
        .unwrap();
    assert_eq!(
        hamt_zarr::export_dir(&sharded, b.path(), &|_| ())
            .await
            .unwrap(),
        copied
    );
    assert_eq!(files(a.path()), keys);
    assert_eq!(files(b.path()), keys);
}

#[tokio::test]
async fn an_encrypted_dataset_without_its_key_is_refused_never_exported_as_ciphertext() {
    let blocks = Arc::new(MemoryStore::new());
    let root = hamt_dataset(&blocks, Some(encryption())).await;
    let keyless = HamtStore::open(blocks.clone(), root).await.unwrap();
    let err = hamt_zarr::dataset_info(&keyless).await.unwrap_err();
    assert!(
        matches!(err, Error::Encrypted { ref key } if key == "count/zarr.json"),
        "{err}"
    );
    assert!(err.to_string().contains("a key is needed"), "{err}");

    let out = tempfile::tempdir().unwrap();
    let err = hamt_zarr::export_dir(&keyless, out.path(), &|_| ())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Encrypted { .. }), "{err}");
    assert_eq!(files(out.path()), Vec::<String>::new());

    // Through Dataset, already reading a document says so; zarrs gets the same error.
    let dataset = Arc::new(Dataset::open(blocks.clone(), root).await.unwrap());
    assert!(matches!(
        dataset.get_value("zarr.json").await,
        Err(Error::Encrypted { .. })
    ));
    let err = common::read_array(&dataset, "temp").await.unwrap_err();
    assert!(err.to_string().contains("encrypted"), "{err}");
    // Chunks cannot be told from ciphertext: they read as stored.
    assert!(dataset.get_value("temp/c/0/0/0").await.unwrap().is_some());

    // With the key, all is as written.
    let keyed = Dataset::builder(blocks.clone(), root)
        .encryption(encryption())
        .build()
        .await
        .unwrap();
    assert_eq!(
        hamt_zarr::dataset_info(&keyed).await.unwrap().nodes.len(),
        7
    );
    let copied = hamt_zarr::export_dir(&keyed, out.path(), &|_| ())
        .await
        .unwrap();
    assert_eq!(copied.keys, 3 * 19 + 3 * 2 + 1);
    let plain = plain_temp_document(&blocks).await;
    assert_eq!(
        std::fs::read(out.path().join("temp/zarr.json")).unwrap(),
        plain
    );
}

/// The plain `temp/zarr.json` of the test dataset.
async fn plain_temp_document(blocks: &Arc<MemoryStore>) -> Vec<u8> {
    let root = hamt_dataset(blocks, None).await;
    let store = HamtStore::open(blocks.clone(), root).await.unwrap();
    store
        .get_value("temp/zarr.json")
        .await
        .unwrap()
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn a_partly_encrypted_dataset_without_its_key_is_refused_too() {
    // Public variables clear, the rest sealed: without the key, export refuses rather than
    // writing the sealed half as if it were data.
    let blocks = Arc::new(MemoryStore::new());
    let enc = encryption()
        .keep_clear("zarr.json")
        .keep_clear("time/")
        .keep_clear("lat/")
        .keep_clear("lon/");
    let root = hamt_dataset(&blocks, Some(enc)).await;
    let dataset = Dataset::open(blocks.clone(), root).await.unwrap();
    assert!(dataset.get_value("zarr.json").await.unwrap().is_some());
    assert!(dataset.get_value("time/zarr.json").await.unwrap().is_some());
    assert!(matches!(
        dataset.get_value("temp/zarr.json").await,
        Err(Error::Encrypted { .. })
    ));
    let out = tempfile::tempdir().unwrap();
    assert!(matches!(
        hamt_zarr::export_dir(&dataset, out.path(), &|_| ()).await,
        Err(Error::Encrypted { .. })
    ));
    assert_eq!(files(out.path()), Vec::<String>::new());
}

#[tokio::test]
async fn missing_blocks_are_not_found_and_other_roots_are_unknown() {
    let blocks = Arc::new(MemoryStore::new());
    let dyn_blocks: Arc<dyn BlockStore> = blocks.clone();
    let missing = HashAlg::Blake3.cid(Codec::DagCbor, b"never stored");
    let err = Dataset::open(dyn_blocks.clone(), missing)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(
        Layout::detect(&dyn_blocks, &missing)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let err = hamt_zarr::hamt_to_sharded(dyn_blocks.clone(), missing, 4)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(!Error::ReadOnly.is_not_found());

    // A chunk whose block is gone: not found when read, in either layout.
    let root = hamt_dataset(&blocks, None).await;
    let store = HamtStore::builder(dyn_blocks.clone())
        .root(root)
        .build()
        .await
        .unwrap();
    let gone = HashAlg::Blake3.cid(Codec::Raw, b"a chunk never stored");
    store.set_pointer("temp/c/0/0/0", gone).await.unwrap();
    let root = store.flush().await.unwrap();
    let sharded = hamt_zarr::hamt_to_sharded(dyn_blocks.clone(), root, 5)
        .await
        .unwrap();
    for root in [root, sharded] {
        let dataset = Dataset::open(dyn_blocks.clone(), root).await.unwrap();
        let err = dataset.get_value("temp/c/0/0/0").await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    // A raw block, a DAG-CBOR number: neither layout.
    let raw = dyn_blocks
        .put(Codec::Raw, Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let number = dyn_blocks
        .put(Codec::DagCbor, Bytes::from_static(&[0x07]))
        .await
        .unwrap();
    for root in [raw, number] {
        let err = Dataset::open(dyn_blocks.clone(), root).await.unwrap_err();
        assert!(matches!(err, Error::UnknownLayout { .. }), "{err}");
    }
}

#[tokio::test]
async fn a_key_for_a_sharded_dataset_is_refused() {
    let blocks: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
    let store = ShardedStore::create(blocks.clone(), 4).await.unwrap();
    let root = store.flush().await.unwrap();
    let err = Dataset::builder(blocks, root)
        .encryption(encryption())
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Layout { .. }), "{err}");
}
