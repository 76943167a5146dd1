//! zarrs' own generic store tests (`zarrs_storage::store_test`, the ones zarrs runs against
//! its stores) against `HamtStore`, `ShardedStore` and `Dataset`: the async traits directly,
//! the sync ones through `blocking`, each also on the store reopened read-only at the
//! flushed root.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use hamt::{BlockStore, Cid, MemoryStore};
use hamt_zarr::zarrs_storage::{
    AsyncListableStorageTraits, AsyncReadableStorageTraits, AsyncWritableStorageTraits,
    ListableStorageTraits, ReadableStorageTraits, StoreKey,
};
use hamt_zarr::{Dataset, Encryption, EncryptionKey, HamtStore, ShardedStore, blocking};
use zarrs_storage::store_test;

/// `store_test`'s reads, listings and sizes of what `async_store_write` wrote.
async fn check_reads<S>(store: &S)
where
    S: AsyncReadableStorageTraits + AsyncListableStorageTraits,
{
    store_test::async_store_read(store).await.unwrap();
    store_test::async_store_list(store).await.unwrap();
    store_test::async_store_list_size(store).await.unwrap();
}

/// Writes `store_test`'s keys and checks them.
async fn write_and_check<S>(store: &S)
where
    S: AsyncReadableStorageTraits + AsyncListableStorageTraits + AsyncWritableStorageTraits,
{
    store_test::async_store_write(store).await.unwrap();
    check_reads(store).await;
}

async fn hamt(blocks: &Arc<MemoryStore>, encryption: Option<Encryption>) -> HamtStore {
    let mut builder = HamtStore::builder(blocks.clone());
    if let Some(encryption) = encryption {
        builder = builder.encryption(encryption);
    }
    builder.build().await.unwrap()
}

#[tokio::test]
async fn hamt_store_passes_the_async_store_tests() {
    let key = EncryptionKey::from_slice(&[9; 32]).unwrap();
    for encryption in [None, Some(Encryption::new(key, &b"hdr"[..]))] {
        let blocks = Arc::new(MemoryStore::new());
        let store = hamt(&blocks, encryption.clone()).await;
        write_and_check(&store).await;
        let root = store.flush().await.unwrap();
        let mut read = HamtStore::builder(blocks.clone()).root(root).read_only();
        if let Some(encryption) = encryption.clone() {
            read = read.encryption(encryption);
        }
        check_reads(&read.build().await.unwrap()).await;
        if encryption.is_none() {
            check_reads(&Dataset::open(blocks.clone(), root).await.unwrap()).await;
        }
    }
}

#[tokio::test]
async fn sharded_store_passes_the_async_store_tests() {
    // None of `store_test`'s keys is a chunk key (`…/c/…`) or a metadata document, so all
    // of them are entries of the manifest's metadata map.
    let blocks = Arc::new(MemoryStore::new());
    let store = ShardedStore::create(blocks.clone(), 4).await.unwrap();
    write_and_check(&store).await;
    let root = store.flush().await.unwrap();
    check_reads(&ShardedStore::open(blocks.clone(), root).await.unwrap()).await;
    check_reads(&Dataset::open(blocks.clone(), root).await.unwrap()).await;
}

#[tokio::test]
async fn partial_writes_of_chunks_go_through_their_shard() {
    // `store_test` writes no chunk; a chunk patched in place lands in its shard.
    let blocks = Arc::new(MemoryStore::new());
    let store = ShardedStore::create(blocks.clone(), 4).await.unwrap();
    store
        .set_value("g/zarr.json", common::GROUP_DOC.to_vec())
        .await
        .unwrap();
    store
        .set_value(
            "g/t/zarr.json",
            br#"{"zarr_format":3,"node_type":"array","shape":[4],"chunk_grid":{"name":"regular","configuration":{"chunk_shape":[2]}}}"#.to_vec(),
        )
        .await
        .unwrap();
    let key = StoreKey::new("g/t/c/1").unwrap();
    store.set(&key, vec![1, 2, 3].into()).await.unwrap();
    store.set_partial(&key, 1, vec![9].into()).await.unwrap();
    // Past the end the value grows, zero-filled.
    store.set_partial(&key, 5, vec![7].into()).await.unwrap();
    let root = store.flush().await.unwrap();
    let read = ShardedStore::open(blocks, root).await.unwrap();
    assert_eq!(
        read.get_value("g/t/c/1").await.unwrap().unwrap().as_ref(),
        [1, 9, 3, 0, 0, 7]
    );
    assert!(read.keys().await.unwrap().contains(&"g/t/c/1".to_owned()));
}

/// Runs `write` and the sync `store_test` checks on the runtime's thread pool from this
/// (non-runtime) thread, then the reads again on the store `reopen` gives for the root.
fn sync_tests<S, R>(
    runtime: &tokio::runtime::Runtime,
    store: S,
    flush: impl AsyncFnOnce(&S) -> Cid,
    reopen: impl AsyncFnOnce(Cid) -> R,
) where
    S: hamt_zarr::Source
        + AsyncReadableStorageTraits
        + AsyncListableStorageTraits
        + AsyncWritableStorageTraits
        + 'static,
    R: hamt_zarr::Source + AsyncReadableStorageTraits + AsyncListableStorageTraits + 'static,
{
    let store = Arc::new(store);
    let sync = blocking(store.clone(), runtime.handle().clone());
    store_test::store_write(&sync).unwrap();
    sync_reads(&sync);
    let root = runtime.block_on(flush(&store));
    let read = blocking(
        Arc::new(runtime.block_on(reopen(root))),
        runtime.handle().clone(),
    );
    sync_reads(&read);
}

fn sync_reads<S: ReadableStorageTraits + ListableStorageTraits>(store: &S) {
    store_test::store_read(store).unwrap();
    store_test::store_list(store).unwrap();
    store_test::store_list_size(store).unwrap();
}

#[test]
fn both_stores_pass_the_sync_store_tests_through_blocking() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let blocks = Arc::new(MemoryStore::new());
    let dyn_blocks: Arc<dyn BlockStore> = blocks.clone();

    let store = runtime.block_on(hamt(&blocks, None));
    sync_tests(
        &runtime,
        store,
        async |s| s.flush().await.unwrap(),
        async |root| HamtStore::open(dyn_blocks.clone(), root).await.unwrap(),
    );

    let store = runtime
        .block_on(ShardedStore::create(dyn_blocks.clone(), 2))
        .unwrap();
    sync_tests(
        &runtime,
        store,
        async |s| s.flush().await.unwrap(),
        async |root| Dataset::open(dyn_blocks.clone(), root).await.unwrap(),
    );
}
