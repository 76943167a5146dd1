//! The sharded store's manifest and shard decoders, through [`ShardedStore`] over a
//! [`MemoryStore`]: opening a fuzzed root manifest, then reading keys and chunks, which decodes
//! fuzzed shards. A read must give the same answer whether the store decodes whole shards
//! ([`ReadMode::Full`]) or only the entry asked for ([`ReadMode::Sparse`]).
//!
//! Input ([`frame`](crate::frame) parts): the manifest block, the keys to read (one per
//! line), then the blocks it may point at. The manifest is opened as it is; a CID in it
//! names a block of the store only if it is a real one, so it is also opened with every link
//! the store lacks pointed at one of the fuzzed blocks (chosen by the link's digest), which
//! lets mutated shards and metadata be reached.

use std::sync::Arc;

use hamt::{BlockStore, Cid, Codec, HashAlg, MemoryStore};
use hamt_zarr::{ReadMode, ShardedStore};
use ipld_core::ipld::Ipld;

/// Keys read from one input at most.
const MAX_KEYS: usize = 16;

/// One input; see the module docs.
pub fn run(data: &[u8]) {
    let parts = crate::frame::split(data, 2 + 64);
    let [manifest, keys, blocks @ ..] = &parts[..] else {
        return;
    };
    crate::block_on(check(manifest, keys, blocks));
}

async fn check(manifest: &[u8], keys: &[u8], blocks: &[&[u8]]) {
    let store = Arc::new(MemoryStore::new());
    let dyn_store: Arc<dyn BlockStore> = store.clone();
    let mut cids = Vec::new();
    for block in blocks {
        let cid = HashAlg::Blake3.cid(Codec::DagCbor, block);
        let Ok(()) = dyn_store.put_keyed(&cid, block.to_vec().into()).await else {
            return;
        };
        cids.push(cid);
    }
    let keys: Vec<String> = String::from_utf8_lossy(keys)
        .lines()
        .take(MAX_KEYS)
        .map(str::to_owned)
        .collect();
    let Ok(root) = dyn_store
        .put(Codec::DagCbor, manifest.to_vec().into())
        .await
    else {
        return;
    };
    read_raw(&dyn_store, root, &keys).await;
    if let Some(patched) = point_links_at(manifest, &dyn_store, blocks, &cids).await
        && let Ok(root) = dyn_store.put(Codec::DagCbor, patched.into()).await
    {
        read_both_ways(&dyn_store, root, &keys).await;
    }
}

/// Opens the manifest `root` as it was fuzzed and reads `keys` (its links rarely name a
/// stored block, so there is little to compare).
async fn read_raw(store: &Arc<dyn BlockStore>, root: Cid, keys: &[String]) {
    if let Ok(zarr) = ShardedStore::open(store.clone(), root).await {
        for key in keys {
            let _ = zarr.get_value(key).await;
        }
    }
}

/// Opens `root` in full and in sparse mode and reads `keys` and a few chunks of each array
/// from both; where both answer, they must agree.
async fn read_both_ways(store: &Arc<dyn BlockStore>, root: Cid, keys: &[String]) {
    let open = |mode| {
        ShardedStore::builder(store.clone())
            .root(root)
            .read_only()
            .read_mode(mode)
            .build()
    };
    let (Ok(full), Ok(sparse)) = (open(ReadMode::Full).await, open(ReadMode::Sparse).await) else {
        return;
    };
    let mut wanted: Vec<String> = keys.to_vec();
    for (path, shape, chunks, _) in full.arrays().into_iter().take(4) {
        let prefix = if path.is_empty() {
            "c".to_owned()
        } else {
            format!("{path}/c")
        };
        let first: Vec<String> = shape.iter().map(|_| "0".to_owned()).collect();
        let last: Vec<String> = shape
            .iter()
            .zip(&chunks)
            .map(|(s, c)| s.div_ceil((*c).max(1)).saturating_sub(1).to_string())
            .collect();
        wanted.push(format!("{prefix}/{}", first.join("/")));
        wanted.push(format!("{prefix}/{}", last.join("/")));
        wanted.push(format!("{path}/zarr.json"));
    }
    for key in &wanted {
        let a = full.get_value(key).await;
        let b = sparse.get_value(key).await;
        if let (Ok(a), Ok(b)) = (a, b) {
            assert_eq!(a, b, "full and sparse reads of {key:?} differ");
        }
    }
    let _ = full.keys().await;
}

/// The manifest with every link the store lacks pointed at one of `blocks` (keeping the
/// link's codec), re-encoded; `None` when it is not DAG-CBOR or there are no blocks.
async fn point_links_at(
    manifest: &[u8],
    store: &Arc<dyn BlockStore>,
    blocks: &[&[u8]],
    cids: &[Cid],
) -> Option<Vec<u8>> {
    if blocks.is_empty() {
        return None;
    }
    let mut ipld: Ipld = serde_ipld_dagcbor::from_slice(manifest).ok()?;
    let mut links = Vec::new();
    collect_links(&mut ipld, &mut links);
    for link in links {
        if store.has(link).await.unwrap_or(false) {
            continue;
        }
        let pick = usize::from(link.hash().digest().first().copied().unwrap_or(0)) % blocks.len();
        let target = Cid::new_v1(link.codec(), *cids[pick].hash());
        if store
            .put_keyed(&target, blocks[pick].to_vec().into())
            .await
            .is_err()
        {
            return None;
        }
        *link = target;
    }
    serde_ipld_dagcbor::to_vec(&ipld).ok()
}

fn collect_links<'a>(ipld: &'a mut Ipld, out: &mut Vec<&'a mut Cid>) {
    match ipld {
        Ipld::Link(cid) => out.push(cid),
        Ipld::List(items) => items.iter_mut().for_each(|i| collect_links(i, out)),
        Ipld::Map(map) => map.values_mut().for_each(|v| collect_links(v, out)),
        _ => {}
    }
}
