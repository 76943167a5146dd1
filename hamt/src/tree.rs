//! Read-side traversal shared by [`Hamt`](crate::Hamt) and [`HamtReader`](crate::HamtReader).

use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use futures::future::BoxFuture;
use futures::{Stream, TryStreamExt as _};

use crate::block::{Codec, HashAlg, inline_data};
use crate::cache::Loader;
use crate::error::{Error, Result};
use crate::link::Link;
use crate::node::{Entry, HASH_LEN, Node, Slot, key_hash};

/// A node either borrowed from an in-memory (possibly dirty) tree or shared from the cache.
pub(crate) enum NodeRef<'a> {
    Mem(&'a Node),
    Shared(Arc<Node>),
}

impl Deref for NodeRef<'_> {
    type Target = Node;
    fn deref(&self) -> &Node {
        match self {
            NodeRef::Mem(n) => n,
            NodeRef::Shared(n) => n,
        }
    }
}

/// Follows `hash` from `root` until it reaches the bucket the key belongs in; returns
/// whether and where the key is, with every node on the route (root first).
pub(crate) async fn route<'a>(
    root: NodeRef<'a>,
    loader: &Loader,
    hash: &[u8; HASH_LEN],
    key: &str,
) -> Result<(Vec<NodeRef<'a>>, Option<Link>)> {
    let mut path = vec![root];
    loop {
        let depth = path.len() - 1;
        if depth >= HASH_LEN {
            return Err(too_deep(None));
        }
        let index = hash[depth];
        let next = match path.last() {
            Some(NodeRef::Mem(node)) => {
                let node: &'a Node = node;
                match node.get(index) {
                    None => return Ok((path, None)),
                    Some(Slot::Bucket(bucket)) => return Ok((path, bucket.find(key))),
                    Some(Slot::Dirty(child)) => NodeRef::Mem(child),
                    Some(Slot::Link(link)) => {
                        NodeRef::Shared(loader.child(node, index, &link).await?)
                    }
                }
            }
            Some(shared @ NodeRef::Shared(_)) => match shared.get(index) {
                None => return Ok((path, None)),
                Some(Slot::Bucket(bucket)) => {
                    let found = bucket.find(key);
                    return Ok((path, found));
                }
                Some(Slot::Link(link)) => {
                    NodeRef::Shared(loader.child(shared, index, &link).await?)
                }
                Some(Slot::Dirty(_)) => unreachable!("stored nodes never hold dirty children"),
            },
            None => unreachable!("the path starts with the root"),
        };
        path.push(next);
    }
}

/// The error for a tree with more levels than the key hash has bytes.
pub(crate) fn too_deep(cid: Option<Cid>) -> Error {
    Error::decode(
        "HAMT",
        cid,
        "the tree is deeper than the 32-byte key hash allows",
    )
}

/// Looks `key` up, following in-memory nodes by reference and stored ones through the cache.
pub(crate) async fn lookup(root: NodeRef<'_>, loader: &Loader, key: &str) -> Result<Option<Cid>> {
    lookup_with(root, loader, key, |cid| {
        Link::from_bytes(cid)
            .expect("bucket CIDs are validated on construction")
            .to_cid()
    })
    .await
}

/// Looks `key` up and hands the binary CID of its value to `found`, which reads it while
/// the node holding it is at hand: no [`Cid`] is built unless `found` builds one.
pub(crate) async fn lookup_with<R>(
    root: NodeRef<'_>,
    loader: &Loader,
    key: &str,
    found: impl FnOnce(&[u8]) -> R,
) -> Result<Option<R>> {
    let hash = key_hash(key);
    let mut node: &Node = &root;
    let mut depth = 0;
    let mut next = loop {
        let index = hash[depth];
        // A child this node already led to: no need to read the link.
        if let Some(child) = node.known_child(index) {
            break child;
        }
        match node.get(index) {
            None => return Ok(None),
            Some(Slot::Bucket(bucket)) => return Ok(bucket.find_cid(key).map(found)),
            Some(Slot::Dirty(child)) => node = child,
            Some(Slot::Link(link)) => break loader.child(node, index, &link).await?,
        }
        depth += 1;
        if depth >= HASH_LEN {
            return Err(too_deep(None));
        }
    };
    loop {
        depth += 1;
        if depth >= HASH_LEN {
            return Err(too_deep(None));
        }
        let index = hash[depth];
        if let Some(child) = next.known_child(index) {
            next = child;
            continue;
        }
        let child = match next.get(index) {
            None => return Ok(None),
            Some(Slot::Bucket(bucket)) => return Ok(bucket.find_cid(key).map(found)),
            Some(Slot::Link(link)) => loader.child(&next, index, &link).await?,
            Some(Slot::Dirty(_)) => unreachable!("stored nodes never hold dirty children"),
        };
        next = child;
    }
}

/// Every entry of the subtree under `node`, or `None` as soon as there are more than `limit`.
pub(crate) fn collect<'b>(
    node: &'b Node,
    limit: usize,
    loader: &'b Loader,
) -> BoxFuture<'b, Result<Option<Vec<Entry>>>> {
    Box::pin(async move {
        if node.occupied() > limit {
            return Ok(None);
        }
        let mut out = Vec::new();
        for slot in node.slots() {
            if let Slot::Bucket(bucket) = slot {
                if out.len() + bucket.len() > limit {
                    return Ok(None);
                }
                out.extend(bucket.entries());
            }
        }
        for slot in node.slots() {
            let sub = match slot {
                Slot::Bucket(_) => continue,
                Slot::Dirty(child) => collect(child, limit - out.len(), loader).await?,
                Slot::Link(cid) => {
                    let child = loader.load(&cid).await?;
                    collect(&child, limit - out.len(), loader).await?
                }
            };
            match sub {
                Some(sub) => out.extend(sub),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    })
}

/// The number of entries under `node`, or `None` as soon as there are more than `limit`:
/// [`collect`]'s answer without building the entries.
pub(crate) fn count<'b>(
    node: &'b Node,
    limit: usize,
    loader: &'b Loader,
) -> BoxFuture<'b, Result<Option<usize>>> {
    Box::pin(async move {
        if node.occupied() > limit {
            return Ok(None);
        }
        let mut n = 0;
        for slot in node.slots() {
            if let Slot::Bucket(bucket) = slot {
                n += bucket.len();
                if n > limit {
                    return Ok(None);
                }
            }
        }
        for slot in node.slots() {
            let sub = match slot {
                Slot::Bucket(_) => continue,
                Slot::Dirty(child) => count(child, limit - n, loader).await?,
                Slot::Link(cid) => {
                    let child = loader.load(&cid).await?;
                    count(&child, limit - n, loader).await?
                }
            };
            match sub {
                Some(sub) => n += sub,
                None => return Ok(None),
            }
        }
        Ok(Some(n))
    })
}

enum Pending<'a> {
    Node(NodeRef<'a>),
    Cid(Link),
}

/// Streams every entry under `root`, depth first, loading up to the store's concurrency of
/// sibling nodes at once.
pub(crate) fn entries<'a>(
    root: NodeRef<'a>,
    loader: &'a Loader,
) -> impl Stream<Item = Result<Entry>> + 'a {
    struct State<'a> {
        stack: Vec<Pending<'a>>,
        ready: VecDeque<Entry>,
    }
    let state = State {
        stack: vec![Pending::Node(root)],
        ready: VecDeque::new(),
    };
    futures::stream::try_unfold(state, move |mut st| async move {
        loop {
            if let Some(entry) = st.ready.pop_front() {
                return Ok(Some((entry, st)));
            }
            match st.stack.pop() {
                None => return Ok(None),
                // py-hamt's order: a node's bucket keys in slot order, then its children from
                // the highest slot down (a stack pushed in slot order), depth first.
                Some(Pending::Node(NodeRef::Mem(node))) => {
                    for slot in node.slots() {
                        match slot {
                            Slot::Bucket(b) => st.ready.extend(b.entries()),
                            Slot::Dirty(child) => st.stack.push(Pending::Node(NodeRef::Mem(child))),
                            Slot::Link(cid) => st.stack.push(Pending::Cid(cid.clone())),
                        }
                    }
                }
                Some(Pending::Node(NodeRef::Shared(node))) => {
                    for slot in node.slots() {
                        match slot {
                            Slot::Bucket(b) => st.ready.extend(b.entries()),
                            Slot::Link(cid) => st.stack.push(Pending::Cid(cid.clone())),
                            Slot::Dirty(_) => {
                                unreachable!("stored nodes never hold dirty children")
                            }
                        }
                    }
                }
                Some(Pending::Cid(first)) => {
                    let mut batch = vec![first];
                    let max = loader.store.concurrency().max(1);
                    while batch.len() < max {
                        match st.stack.last() {
                            Some(Pending::Cid(cid)) => {
                                batch.push(cid.clone());
                                st.stack.pop();
                            }
                            _ => break,
                        }
                    }
                    let nodes = loader.load_many(&batch).await?;
                    // `batch` is in pop order; push back so the first popped comes out first.
                    for node in nodes.into_iter().rev() {
                        st.stack.push(Pending::Node(NodeRef::Shared(node)));
                    }
                }
            }
        }
    })
}

/// Streams every entry with its value bytes. Values are fetched in batches of
/// [`VALUE_BATCH`] through [`get_many`](crate::BlockStore::get_many), two batches in flight.
pub(crate) fn values<'a>(
    root: NodeRef<'a>,
    loader: &'a Loader,
) -> impl Stream<Item = Result<(String, Bytes)>> + 'a {
    entries(root, loader)
        .try_chunks(VALUE_BATCH)
        .map_err(|e| e.1)
        .map_ok(move |chunk| async move {
            let cids: Vec<Cid> = chunk.iter().map(|e| e.value.to_cid()).collect();
            // Inline (identity) values need no fetch.
            let stored: Vec<Cid> = cids
                .iter()
                .filter(|c| inline_data(c).is_none())
                .copied()
                .collect();
            let mut fetched = loader.store.get_many(&stored).await?.into_iter();
            let mut values = Vec::with_capacity(cids.len());
            for cid in &cids {
                let value = match inline_data(cid) {
                    Some(data) => Bytes::copy_from_slice(data),
                    // Values Kubo stored as UnixFS files come back as their bytes, as from
                    // `get`.
                    None if cid.codec() == Codec::DagPb.code() => {
                        fetched.next();
                        crate::unixfs::cat(&loader.store, cid, u64::MAX).await?
                    }
                    None => fetched
                        .next()
                        .ok_or_else(|| Error::NotFound { cid: *cid })?,
                };
                values.push(value);
            }
            let pairs = chunk
                .into_iter()
                .zip(values)
                .map(|(e, v)| Ok((e.key.into_string(), v)));
            Ok(futures::stream::iter(pairs))
        })
        .try_buffered(2)
        .try_flatten()
}

/// How many values [`values`] fetches at once.
const VALUE_BATCH: usize = 256;

/// Shape and size of a tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Number of keys.
    pub keys: u64,
    /// Number of nodes, the root included.
    pub nodes: u64,
    /// Encoded size of all nodes, in bytes.
    pub node_bytes: u64,
    /// Number of node levels (1 for a tree that is only a root).
    pub depth: u32,
    /// Largest number of keys in one bucket.
    pub max_bucket: u32,
}

/// Walks the tree level by level, loading each level's nodes concurrently.
pub(crate) async fn stats(root: NodeRef<'_>, loader: &Loader) -> Result<Stats> {
    let mut stats = Stats::default();
    let mut mem_level: Vec<&Node> = vec![&*root];
    let mut cid_level: Vec<Link> = Vec::new();
    while !mem_level.is_empty() || !cid_level.is_empty() {
        stats.depth += 1;
        let stored = loader.load_many(&cid_level).await?;
        let mut next_mem = Vec::new();
        let mut next_cid = Vec::new();
        for node in mem_level {
            visit(node, &mut stats, &mut next_cid, &mut next_mem);
        }
        for node in &stored {
            // Stored nodes have no dirty children, so nothing lands in `none`.
            let mut none = Vec::new();
            visit(node, &mut stats, &mut next_cid, &mut none);
        }
        mem_level = next_mem;
        cid_level = next_cid;
    }
    Ok(stats)
}

fn visit<'n>(
    node: &'n Node,
    stats: &mut Stats,
    next_cid: &mut Vec<Link>,
    next_mem: &mut Vec<&'n Node>,
) {
    stats.nodes += 1;
    // A dirty child has no CID yet: encode it as a BLAKE3 CID, the size it will have.
    let placeholder = Link::from_cid(&HashAlg::Blake3.cid(Codec::DagCbor, b""));
    stats.node_bytes += node.encode_with(|_| placeholder.clone()).len() as u64;
    for slot in node.slots() {
        match slot {
            Slot::Bucket(e) => {
                stats.keys += e.len() as u64;
                let len = u32::try_from(e.len()).unwrap_or(u32::MAX);
                stats.max_bucket = stats.max_bucket.max(len);
            }
            Slot::Link(cid) => next_cid.push(cid.clone()),
            Slot::Dirty(child) => next_mem.push(child),
        }
    }
}

/// Keys with their value CIDs.
pub(crate) fn pointers<'a>(
    root: NodeRef<'a>,
    loader: &'a Loader,
) -> impl Stream<Item = Result<(String, Cid)>> + 'a {
    entries(root, loader).map_ok(|e| (e.key.into_string(), e.value.to_cid()))
}
