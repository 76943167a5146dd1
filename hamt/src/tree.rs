//! Read-side traversal shared by [`Hamt`](crate::Hamt) and [`HamtReader`](crate::HamtReader).

use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use futures::future::BoxFuture;
use futures::{Stream, TryStreamExt as _};

use crate::block::{Codec, HashAlg};
use crate::cache::Loader;
use crate::error::{Error, Result};
use crate::node::{Entry, HASH_LEN, Node, Slot, key_hash, key_order};

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
) -> Result<(Vec<NodeRef<'a>>, Option<Cid>)> {
    let mut path = vec![root];
    loop {
        let depth = path.len() - 1;
        if depth >= HASH_LEN {
            return Err(Error::decode(
                "HAMT",
                None,
                "tree is deeper than the key hash is long",
            ));
        }
        let index = hash[depth];
        let next = match path.last() {
            Some(NodeRef::Mem(node)) => {
                let node: &'a Node = node;
                match node.get(index) {
                    None => return Ok((path, None)),
                    Some(Slot::Bucket(entries)) => return Ok((path, find(entries, key))),
                    Some(Slot::Dirty(child)) => NodeRef::Mem(child),
                    Some(Slot::Link(cid)) => NodeRef::Shared(loader.load(cid).await?),
                }
            }
            Some(shared @ NodeRef::Shared(_)) => match shared.get(index) {
                None => return Ok((path, None)),
                Some(Slot::Bucket(entries)) => {
                    let found = find(entries, key);
                    return Ok((path, found));
                }
                Some(Slot::Link(cid)) => {
                    let cid = *cid;
                    NodeRef::Shared(loader.load(&cid).await?)
                }
                Some(Slot::Dirty(_)) => unreachable!("stored nodes never hold dirty children"),
            },
            None => unreachable!("the path starts with the root"),
        };
        path.push(next);
    }
}

/// The value CID of `key` in a sorted bucket.
pub(crate) fn find(entries: &[Entry], key: &str) -> Option<Cid> {
    entries
        .binary_search_by(|e| key_order(&e.key, key))
        .ok()
        .map(|i| entries[i].value)
}

/// Looks `key` up.
pub(crate) async fn lookup(root: NodeRef<'_>, loader: &Loader, key: &str) -> Result<Option<Cid>> {
    let hash = key_hash(key);
    Ok(route(root, loader, &hash, key).await?.1)
}

/// Every entry of the subtree under `node`, or `None` as soon as there are more than `limit`.
pub(crate) fn collect<'b>(
    node: &'b Node,
    limit: usize,
    loader: &'b Loader,
) -> BoxFuture<'b, Result<Option<Vec<Entry>>>> {
    Box::pin(async move {
        let mut out = Vec::new();
        for slot in node.slots() {
            if let Slot::Bucket(entries) = slot {
                if out.len() + entries.len() > limit {
                    return Ok(None);
                }
                out.extend(entries.iter().cloned());
            }
        }
        for slot in node.slots() {
            let sub = match slot {
                Slot::Bucket(_) => continue,
                Slot::Dirty(child) => collect(child, limit - out.len(), loader).await?,
                Slot::Link(cid) => {
                    let child = loader.load(cid).await?;
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

enum Pending<'a> {
    Node(NodeRef<'a>),
    Cid(Cid),
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
                Some(Pending::Node(NodeRef::Mem(node))) => {
                    for slot in node.slots().rev() {
                        match slot {
                            Slot::Bucket(e) => st.ready.extend(e.iter().cloned()),
                            Slot::Dirty(child) => st.stack.push(Pending::Node(NodeRef::Mem(child))),
                            Slot::Link(cid) => st.stack.push(Pending::Cid(*cid)),
                        }
                    }
                }
                Some(Pending::Node(NodeRef::Shared(node))) => {
                    for slot in node.slots().rev() {
                        match slot {
                            Slot::Bucket(e) => st.ready.extend(e.iter().cloned()),
                            Slot::Link(cid) => st.stack.push(Pending::Cid(*cid)),
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
                                batch.push(*cid);
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

/// Streams every entry with its value bytes, fetching values concurrently.
pub(crate) fn values<'a>(
    root: NodeRef<'a>,
    loader: &'a Loader,
) -> impl Stream<Item = Result<(String, Bytes)>> + 'a {
    entries(root, loader)
        .map_ok(move |e| async move {
            let bytes = loader.store.get(&e.value).await?;
            Ok((e.key.into_string(), bytes))
        })
        .try_buffered(loader.store.concurrency().max(1))
}

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
    let mut cid_level: Vec<Cid> = Vec::new();
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
    next_cid: &mut Vec<Cid>,
    next_mem: &mut Vec<&'n Node>,
) {
    stats.nodes += 1;
    // A dirty child has no CID yet: encode it as a BLAKE3 CID, the size it will have.
    let placeholder = HashAlg::Blake3.cid(Codec::DagCbor, b"");
    stats.node_bytes += node.encode_with(|_| placeholder).len() as u64;
    for slot in node.slots() {
        match slot {
            Slot::Bucket(e) => {
                stats.keys += e.len() as u64;
                let len = u32::try_from(e.len()).unwrap_or(u32::MAX);
                stats.max_bucket = stats.max_bucket.max(len);
            }
            Slot::Link(cid) => next_cid.push(*cid),
            Slot::Dirty(child) => next_mem.push(child),
        }
    }
}

/// Keys with their value CIDs.
pub(crate) fn pointers<'a>(
    root: NodeRef<'a>,
    loader: &'a Loader,
) -> impl Stream<Item = Result<(String, Cid)>> + 'a {
    entries(root, loader).map_ok(|e| (e.key.into_string(), e.value))
}
