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

/// Looks `key` up and returns the links followed below `root` (the nodes from the root's
/// child down to the one holding the key, top first) and the value's link: the path a
/// trustless client needs to check the value.
pub(crate) async fn lookup_path(
    root: NodeRef<'_>,
    loader: &Loader,
    key: &str,
) -> Result<Option<(Vec<Link>, Link)>> {
    let hash = key_hash(key);
    let mut links = Vec::new();
    let mut node = root;
    for &index in &hash {
        let next = match node.get(index) {
            None => return Ok(None),
            Some(Slot::Bucket(bucket)) => return Ok(bucket.find(key).map(|v| (links, v))),
            Some(Slot::Dirty(_)) => {
                // A changed subtree has no CIDs yet: there is no path to name.
                return Err(Error::NotSupported {
                    store: "hamt",
                    operation: "paths through unflushed changes",
                });
            }
            Some(Slot::Link(link)) => {
                let child = loader.child(&node, index, &link).await?;
                links.push(link);
                child
            }
        };
        node = NodeRef::Shared(next);
    }
    Err(too_deep(None))
}

/// Whether `key` can be looked up from memory alone: `Some(found)` when every node on its
/// route is in memory (in the tree, remembered by its parent, or in the cache); `None` when
/// a node would have to be fetched.
pub(crate) fn resolvable_from_memory(
    root: NodeRef<'_>,
    loader: &Loader,
    key: &str,
) -> Option<bool> {
    let hash = key_hash(key);
    let mut node = root;
    for &index in &hash {
        match node.step(index, key, loader) {
            Step::Next(child) => node = child,
            Step::Done(found) => return Some(found.is_some()),
            Step::Fetch(_) => return None,
        }
    }
    None
}

/// Where one key of a batched lookup stands.
enum Cursor<'a> {
    /// At this node, this many levels down.
    At(NodeRef<'a>, usize),
    /// Resolved.
    Done(Option<Link>),
}

/// One step of a key down the tree, from memory.
enum Step<'a> {
    /// The next node.
    Next(NodeRef<'a>),
    /// The key's bucket was reached: its value, if any.
    Done(Option<Link>),
    /// The next node is not in memory.
    Fetch(Link),
}

impl<'a> NodeRef<'a> {
    /// Another handle on the same node.
    fn dup(&self) -> NodeRef<'a> {
        match self {
            NodeRef::Mem(n) => NodeRef::Mem(n),
            NodeRef::Shared(n) => NodeRef::Shared(n.clone()),
        }
    }

    /// Where `key` goes from this node through slot `index`, without fetching anything.
    fn step(&self, index: u8, key: &str, loader: &Loader) -> Step<'a> {
        if let Some(child) = self.known_child(index) {
            return Step::Next(NodeRef::Shared(child));
        }
        let slot = match self {
            NodeRef::Mem(node) => match (*node).get(index) {
                Some(Slot::Dirty(child)) => return Step::Next(NodeRef::Mem(child)),
                other => other,
            },
            NodeRef::Shared(node) => node.get(index),
        };
        match slot {
            None => Step::Done(None),
            Some(Slot::Bucket(bucket)) => Step::Done(bucket.find(key)),
            Some(Slot::Link(link)) => match loader.cache.get(&link) {
                Some(child) => {
                    self.remember_child(index, &child);
                    Step::Next(NodeRef::Shared(child))
                }
                None => Step::Fetch(link),
            },
            Some(Slot::Dirty(_)) => unreachable!("stored nodes never hold dirty children"),
        }
    }
}

/// Looks many keys up together, level by level: every node the keys need at one level is
/// fetched in one [`load_many`](Loader::load_many), so `n` lookups cost about as many round
/// trips as the tree has levels, not `n` times that.
pub(crate) async fn lookup_many(
    root: NodeRef<'_>,
    loader: &Loader,
    keys: &[&str],
) -> Result<Vec<Option<Link>>> {
    let hashes: Vec<[u8; HASH_LEN]> = keys.iter().map(|k| key_hash(k)).collect();
    let mut cursors: Vec<Cursor<'_>> = keys.iter().map(|_| Cursor::At(root.dup(), 0)).collect();
    loop {
        // Every key goes down as far as memory takes it; the links where keys stop are the
        // next level's fetches, each once however many keys wait for it.
        let mut wanted: crate::link::FastMap<Link, Vec<usize>> = crate::link::FastMap::default();
        for (i, cursor) in cursors.iter_mut().enumerate() {
            while let Cursor::At(node, depth) = cursor {
                if *depth >= HASH_LEN {
                    return Err(too_deep(None));
                }
                match node.step(hashes[i][*depth], keys[i], loader) {
                    Step::Next(child) => *cursor = Cursor::At(child, *depth + 1),
                    Step::Done(found) => *cursor = Cursor::Done(found),
                    Step::Fetch(link) => {
                        wanted.entry(link).or_default().push(i);
                        break;
                    }
                }
            }
        }
        if wanted.is_empty() {
            break;
        }
        let (links, waiting): (Vec<Link>, Vec<Vec<usize>>) = wanted.into_iter().unzip();
        let nodes = loader.load_many(&links).await?;
        for (node, waiting) in nodes.into_iter().zip(waiting) {
            for i in waiting {
                if let Cursor::At(parent, depth) = &cursors[i] {
                    parent.remember_child(hashes[i][*depth], &node);
                    let depth = *depth + 1;
                    cursors[i] = Cursor::At(NodeRef::Shared(node.clone()), depth);
                }
            }
        }
    }
    Ok(cursors
        .into_iter()
        .map(|c| match c {
            Cursor::Done(found) => found,
            Cursor::At(..) => None,
        })
        .collect())
}

/// What a block of a subtree stream is to the reader of a HAMT.
enum Expect {
    /// A node of the tree.
    Node,
    /// The value of this key.
    Value(Box<str>),
    /// A block inside a value's own DAG (a UnixFS file's chunks).
    Part,
}

/// A value whose DAG is still arriving: a UnixFS file, gathered until its last block.
struct Gathering {
    key: Box<str>,
    root: Cid,
    /// The walk's stack height when the value's DAG is done.
    base: usize,
    blocks: crate::store::MemoryStore,
}

/// Every entry under the node `root` with its value bytes, from one [`SubtreeFetch`]
/// stream of the whole tree with duplicates (so every key's value comes where the walk
/// meets it): nodes go into the cache, values out as they arrive, in the stream's
/// depth-first order. Memory holds the walk's stack (a few slots per level) and at most
/// one value's blocks, whatever the tree's size.
///
/// When the store turns out not to serve subtrees, the entries are read block by block
/// ([`values`]) instead.
///
/// [`SubtreeFetch`]: crate::SubtreeFetch
pub(crate) fn subtree_values<'a>(
    root: Cid,
    fetch: &'a dyn crate::store::SubtreeFetch,
    loader: &'a Loader,
) -> impl Stream<Item = Result<(String, Bytes)>> + 'a {
    use futures::StreamExt as _;
    let state = SubtreeWalk {
        blocks: fetch.subtree(root, true),
        stack: vec![(root, Expect::Node)],
        ready: VecDeque::new(),
        gathering: None,
        started: false,
        fallback: None,
    };
    futures::stream::try_unfold(state, move |mut st| async move {
        loop {
            if let Some(fallback) = &mut st.fallback {
                return match fallback.next().await {
                    Some(item) => item.map(|pair| Some((pair, st))),
                    None => Ok(None),
                };
            }
            if let Some(pair) = st.ready.pop_front() {
                return Ok(Some((pair, st)));
            }
            if let Some(g) = st.gathering.take_if(|g| st.stack.len() == g.base) {
                let store: Arc<dyn crate::store::BlockStore> = Arc::new(g.blocks);
                let value = crate::unixfs::read_value(&store, &g.root).await?;
                st.ready.push_back((g.key.into_string(), value));
                continue;
            }
            // Identity CIDs are never sent: what they hold is at hand.
            if let Some((cid, _)) = st.stack.last()
                && let Some(data) = inline_data(cid)
            {
                let data = Bytes::copy_from_slice(data);
                let Some((cid, expect)) = st.stack.pop() else {
                    unreachable!("the stack has a top")
                };
                st.accept(loader, cid, expect, data)?;
                continue;
            }
            let next = st.blocks.next().await;
            let first = !st.started;
            st.started = true;
            let block = match (next, st.stack.last()) {
                (Some(Err(Error::NotSupported { .. })), _) if first => {
                    let node = loader.load_cid(&root).await?;
                    st.fallback = Some(values(NodeRef::Shared(node), loader).boxed());
                    continue;
                }
                (Some(Err(e)), _) => return Err(e),
                (None, None) => return Ok(None),
                (None, Some((missing, _))) => {
                    return Err(Error::decode(
                        "subtree stream",
                        Some(root),
                        format!("it ended before block {missing}"),
                    ));
                }
                (Some(Ok(block)), None) => {
                    return Err(Error::decode(
                        "subtree stream",
                        Some(root),
                        format!("block {} came after the walk was complete", block.cid()),
                    ));
                }
                (Some(Ok(block)), Some(_)) => block,
            };
            let (cid, data) = block.into_parts();
            let Some((expected, expect)) = st.stack.pop() else {
                unreachable!("the stack has a top")
            };
            if cid != expected {
                return Err(Error::decode(
                    "subtree stream",
                    Some(root),
                    format!("block {cid} came where the walk expected {expected}"),
                ));
            }
            st.accept(loader, cid, expect, data)?;
        }
    })
}

/// Where a [`subtree_values`] walk stands.
struct SubtreeWalk<'a> {
    /// The store's stream of the tree's blocks.
    blocks: crate::store::BlockStream<'a>,
    /// The blocks still expected, the next on top, and what each is.
    stack: Vec<(Cid, Expect)>,
    /// Entries complete and not yet handed out.
    ready: VecDeque<(String, Bytes)>,
    /// A value whose blocks are still arriving.
    gathering: Option<Gathering>,
    /// Whether the stream gave its first item.
    started: bool,
    /// The block-by-block read, when the store turned out not to serve subtrees.
    fallback: Option<futures::stream::BoxStream<'a, Result<(String, Bytes)>>>,
}

impl SubtreeWalk<'_> {
    /// Takes one block of a subtree walk: a node goes into the cache and its entries and
    /// children onto the stack (in written order, the next on top), a value out, a part of a
    /// value into what is being gathered.
    fn accept(&mut self, loader: &Loader, cid: Cid, expect: Expect, data: Bytes) -> Result<()> {
        let SubtreeWalk {
            stack,
            ready,
            gathering,
            ..
        } = self;
        match expect {
            Expect::Node => {
                let node = loader.insert_block(&cid, data)?;
                let start = stack.len();
                for slot in node.slots() {
                    match slot {
                        Slot::Bucket(bucket) => {
                            for e in bucket.entries() {
                                stack.push((e.value.to_cid(), Expect::Value(e.key)));
                            }
                        }
                        Slot::Link(link) => stack.push((link.to_cid(), Expect::Node)),
                        Slot::Dirty(_) => unreachable!("stored nodes never hold dirty children"),
                    }
                }
                stack[start..].reverse();
            }
            Expect::Value(key) if cid.codec() == Codec::Raw.code() => {
                ready.push_back((key.into_string(), data));
            }
            Expect::Value(key) => {
                let base = stack.len();
                push_links(stack, &cid, &data)?;
                let blocks = crate::store::MemoryStore::new();
                blocks.insert_unchecked(cid, data);
                *gathering = Some(Gathering {
                    key,
                    root: cid,
                    base,
                    blocks,
                });
            }
            Expect::Part => {
                push_links(stack, &cid, &data)?;
                if let Some(g) = gathering {
                    g.blocks.insert_unchecked(cid, data);
                }
            }
        }
        Ok(())
    }
}

/// Pushes the links of a block inside a value onto the walk's stack, the first on top.
fn push_links(stack: &mut Vec<(Cid, Expect)>, cid: &Cid, data: &[u8]) -> Result<()> {
    let links = crate::dag::links(cid, data)?;
    stack.extend(links.into_iter().rev().map(|c| (c, Expect::Part)));
    Ok(())
}
