//! py-hamt's listing order, computed from the keys alone.
//!
//! zarr-python consolidates metadata in the order a store lists its keys, so that order is part
//! of a dataset's root CID. py-hamt lists a tree depth first: at each node the keys of its
//! buckets in slot order (each bucket in DAG-CBOR's map-key order: shorter keys first, then
//! bytewise), then its children from the highest slot down. Since py-hamt 3.6's trees are
//! canonical (a slot at depth d holds a bucket exactly when at most `max_bucket_size` keys share
//! its hash prefix), the order follows from the keys' BLAKE3 hashes: no node needs to be read,
//! which matters while a dataset is being written to a store that cannot serve it back yet.
//!
//! This is the order of py-hamt's flushed tree, where every bucket is read back from its
//! DAG-CBOR map. A writable py-hamt lists a bucket from its in-memory dict instead (keys in
//! insertion order, a split's new key first), which this does not reproduce: when two keys
//! that decide zarr's member order share a bucket, a dataset consolidated while writing may
//! list its members, and so consolidate its metadata, in another order than py-hamt (and get
//! another root CID).

/// `keys` in py-hamt's listing order for a tree of bucket size `max_bucket_size`.
pub(crate) fn tree_order(keys: Vec<String>, max_bucket_size: usize) -> Vec<String> {
    let mut hashed: Vec<([u8; 32], String)> = keys
        .into_iter()
        .map(|k| (*blake3::hash(k.as_bytes()).as_bytes(), k))
        .collect();
    hashed.sort_unstable_by_key(|a| a.0);
    let mut out = Vec::with_capacity(hashed.len());
    visit(&mut hashed, 0, max_bucket_size.max(1), &mut out);
    out
}

/// Emits the node whose keys (sorted by hash) are `keys`, at `depth`.
fn visit(keys: &mut [([u8; 32], String)], depth: usize, max: usize, out: &mut Vec<String>) {
    if depth >= 32 {
        // The whole hash is used up: one bucket holds them all.
        keys.sort_unstable_by(|a, b| cbor_key_order(&a.1, &b.1));
        out.extend(keys.iter().map(|(_, k)| k.clone()));
        return;
    }
    // Keys sorted by hash are grouped by slot (the hash byte at this depth) in slot order.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    while start < keys.len() {
        let slot = keys[start].0[depth];
        let end = start
            + keys[start..]
                .iter()
                .take_while(|(h, _)| h[depth] == slot)
                .count();
        groups.push((start, end));
        start = end;
    }
    for &(a, b) in &groups {
        if b - a <= max {
            let mut bucket: Vec<&String> = keys[a..b].iter().map(|(_, k)| k).collect();
            bucket.sort_unstable_by(|x, y| cbor_key_order(x, y));
            out.extend(bucket.into_iter().cloned());
        }
    }
    for &(a, b) in groups.iter().rev() {
        if b - a > max {
            visit(&mut keys[a..b], depth + 1, max, out);
        }
    }
}

/// DAG-CBOR's map-key order: shorter first, then bytewise.
fn cbor_key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}
