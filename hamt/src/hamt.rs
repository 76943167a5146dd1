//! The HAMT: [`Hamt`] to read and write, [`HamtReader`] to share a flushed root.

use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use futures::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::block::{Block, Codec, HashAlg, MAX_INLINE, identity_cid};
use crate::cache::{Loader, NodeCache};
use crate::error::{Error, Result};
use crate::link::Link;
use crate::node::{Entry, HASH_LEN, Insert, MAX_KEY_LEN, Node, Slot, key_hash};
use crate::store::BlockStore;
use crate::tree::{self, NodeRef, Stats, too_deep};

/// Tuning knobs of a HAMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    max_bucket_size: usize,
    cache_bytes: usize,
    inline_values: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_bucket_size: 4,
            cache_bytes: 256 << 20,
            inline_values: 0,
        }
    }
}

impl Config {
    /// py-hamt's bucket size (4) and a 256 MiB node cache: enough for the nodes of a
    /// tree of about 2 million keys, so random reads of such a tree hit the cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Most keys a bucket holds before it is split into a child node (py-hamt's
    /// `max_bucket_size`). Trees written with different values are different trees (different
    /// root CIDs), but any tree can be read with any setting.
    #[must_use]
    pub fn max_bucket_size(mut self, n: usize) -> Self {
        self.max_bucket_size = n;
        self
    }

    /// Memory budget of the decoded-node cache, in bytes.
    #[must_use]
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Stores values of at most `max_len` bytes (up to [`MAX_INLINE`], 64) inside the tree's
    /// nodes as identity CIDs, instead of as blocks of their own; 0, the default, turns this
    /// off.
    ///
    /// An identity CID carries its data, so a small value costs no block write or read, the
    /// way `fvm_ipld_hamt` keeps values in its nodes, and the tree is still py-hamt's format:
    /// every bucket maps keys to CIDs. py-hamt reads such a tree through Kubo (whose gateway
    /// answers identity CIDs itself, as `ipfs add --inline` relies on), but not through its
    /// in-memory store, and the root CID differs from py-hamt's for the same data. Leave it
    /// off when a tree must match py-hamt's root.
    #[must_use]
    pub fn inline_values(mut self, max_len: usize) -> Self {
        self.inline_values = max_len;
        self
    }

    fn validate(self) -> Result<Self> {
        if !(1..=255).contains(&self.max_bucket_size) {
            return Err(Error::InvalidConfig(
                "max_bucket_size must be between 1 and 255".into(),
            ));
        }
        if self.inline_values > MAX_INLINE {
            return Err(Error::InvalidConfig(format!(
                "inline_values must be at most {MAX_INLINE} bytes"
            )));
        }
        Ok(self)
    }

    /// The identity CID `value` is stored as, when it is small enough to inline.
    fn inline(self, value: &[u8]) -> Option<Cid> {
        self.inlines(value)
            .then(|| identity_cid(Codec::Raw, value))
            .flatten()
    }

    /// [`inline`](Self::inline) as a link, built without a [`Cid`] for short values.
    fn inline_link(self, value: &[u8]) -> Option<Link> {
        if !self.inlines(value) {
            return None;
        }
        Link::identity(Codec::Raw, value).or_else(|| self.inline(value).map(|c| Link::from_cid(&c)))
    }

    fn inlines(self, value: &[u8]) -> bool {
        // 0 turns inlining off, even for an empty value.
        self.inline_values > 0 && value.len() <= self.inline_values
    }
}

/// The read methods [`Hamt`] and [`HamtReader`] share, written once: each type provides
/// `tree()` (its root) and `loader` (store and node cache).
macro_rules! read_methods {
    () => {
        /// The value bytes of `key` (for a value stored as a UnixFS file, the file's bytes).
        ///
        /// # Errors
        /// Store failures, including a missing node or value block.
        pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
            // An inlined value is copied out of its node; only a block needs a CID.
            let found =
                tree::lookup_with(self.tree(), &self.loader, key, |cid| {
                    match crate::link::inline_bytes(cid) {
                        Some(data) => Ok(Bytes::copy_from_slice(data)),
                        None => Err(Link::from_bytes(cid)
                            .expect("bucket CIDs are validated on construction")),
                    }
                })
                .await?;
            match found {
                None => Ok(None),
                Some(Ok(data)) => Ok(Some(data)),
                Some(Err(link)) => {
                    let cid = link.to_cid();
                    Ok(Some(
                        crate::unixfs::read_value(&self.loader.store, &cid).await?,
                    ))
                }
            }
        }

        /// The value of `key`, decoded from DAG-CBOR.
        ///
        /// # Errors
        /// As [`get`](Self::get), and [`Error::Decode`] when the value does not decode as `T`.
        pub async fn get_cbor<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
            decode_value(self.get(key).await?)
        }

        /// The CID of the value block of `key`.
        ///
        /// # Errors
        /// Store failures.
        pub async fn get_pointer(&self, key: &str) -> Result<Option<Cid>> {
            tree::lookup(self.tree(), &self.loader, key).await
        }

        /// True when `key` is in the map.
        ///
        /// # Errors
        /// Store failures.
        pub async fn contains_key(&self, key: &str) -> Result<bool> {
            Ok(self.get_pointer(key).await?.is_some())
        }

        /// Every key, depth first, in py-hamt's order (a node's bucket keys in slot order, then
        /// its children from the highest slot down).
        pub fn keys(&self) -> impl Stream<Item = Result<String>> + '_ {
            use futures::TryStreamExt as _;
            tree::entries(self.tree(), &self.loader).map_ok(|e| e.key.into_string())
        }

        /// Every key with the CID of its value.
        pub fn pointers(&self) -> impl Stream<Item = Result<(String, Cid)>> + '_ {
            tree::pointers(self.tree(), &self.loader)
        }

        /// Every key with its value bytes; values are fetched concurrently.
        // A `Stream` is the async iterator; `iter` is the name users look for.
        #[allow(clippy::iter_not_returning_iterator)]
        pub fn iter(&self) -> impl Stream<Item = Result<(String, Bytes)>> + '_ {
            tree::values(self.tree(), &self.loader)
        }

        /// Counts keys, nodes and levels.
        ///
        /// # Errors
        /// Store failures.
        pub async fn stats(&self) -> Result<Stats> {
            tree::stats(self.tree(), &self.loader).await
        }
    };
}

/// A hash array mapped trie over a [`BlockStore`], in py-hamt 3's format.
///
/// Keys are strings; each value is its own raw block and the tree maps keys to value CIDs.
/// Changes stay in memory until [`flush`](Self::flush) writes the changed nodes and returns
/// the new root CID; value blocks are written when they are inserted. The same set of keys
/// and values always gives the same root CID, whatever the order of inserts and removes.
///
/// ```
/// # futures::executor::block_on(async {
/// use std::sync::Arc;
/// use hamt::{Hamt, HamtReader, MemoryStore};
///
/// let store = Arc::new(MemoryStore::new());
/// let mut map = Hamt::new(store.clone());
/// map.insert("temperature/0.0", b"\x00\x01".to_vec()).await?;
/// let root = map.flush().await?;
///
/// let reader = HamtReader::open(store, root).await?;
/// assert_eq!(reader.get("temperature/0.0").await?.as_deref(), Some(&b"\x00\x01"[..]));
/// # Ok::<(), hamt::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct Hamt {
    loader: Loader,
    config: Config,
    root: Node,
    /// The root's CID while the tree is unchanged since it was opened or flushed.
    root_cid: Option<Cid>,
    /// Number of keys, when known without a walk.
    len: Option<u64>,
    /// Inserts and removes since the last flush: a cheap measure of the flush's work.
    changes: usize,
}

impl Hamt {
    /// An empty HAMT with the default [`Config`].
    pub fn new(store: Arc<dyn BlockStore>) -> Self {
        Self::from_parts(store, Config::default(), Node::default(), None, Some(0))
    }

    /// An empty HAMT.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bucket size of 0.
    pub fn with_config(store: Arc<dyn BlockStore>, config: Config) -> Result<Self> {
        Ok(Self::from_parts(
            store,
            config.validate()?,
            Node::default(),
            None,
            Some(0),
        ))
    }

    /// Opens the HAMT whose root node is `root`, for reading and writing.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the store lacks the root block, [`Error::Decode`] when it is
    /// not a HAMT node.
    pub async fn open(store: Arc<dyn BlockStore>, root: Cid) -> Result<Self> {
        Self::open_with_config(store, root, Config::default()).await
    }

    /// Opens the HAMT at `root` with a [`Config`].
    ///
    /// # Errors
    /// As [`open`](Self::open), and [`Error::InvalidConfig`].
    pub async fn open_with_config(
        store: Arc<dyn BlockStore>,
        root: Cid,
        config: Config,
    ) -> Result<Self> {
        let config = config.validate()?;
        let bytes = store.get(&root).await?;
        let node = Node::decode(bytes, Some(root))?;
        Ok(Self::from_parts(store, config, node, Some(root), None))
    }

    fn from_parts(
        store: Arc<dyn BlockStore>,
        config: Config,
        root: Node,
        root_cid: Option<Cid>,
        len: Option<u64>,
    ) -> Self {
        Self {
            loader: Loader {
                store,
                cache: Arc::new(NodeCache::new(config.cache_bytes)),
            },
            config,
            root,
            root_cid,
            len,
            changes: 0,
        }
    }

    /// The store the tree lives in.
    pub fn store(&self) -> &Arc<dyn BlockStore> {
        &self.loader.store
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        self.config
    }

    /// The root CID, if nothing changed since the tree was opened or last flushed.
    pub fn root(&self) -> Option<Cid> {
        self.root_cid
    }

    /// True when there are changes that [`flush`](Self::flush) has not written yet.
    pub fn is_dirty(&self) -> bool {
        self.root_cid.is_none()
    }

    fn tree(&self) -> NodeRef<'_> {
        NodeRef::Mem(&self.root)
    }

    read_methods!();

    /// Stores `value` as a raw block and maps `key` to it (py-hamt's `values_are_bytes`
    /// mode). Returns the CID of the value it replaced.
    ///
    /// # Errors
    /// Store failures; [`Error::Encode`] for a key over 16 KiB; [`Error::HashExhausted`] in
    /// the astronomically unlikely case that more than `max_bucket_size` keys share a whole
    /// 256-bit hash.
    pub async fn insert(&mut self, key: &str, value: impl Into<Bytes>) -> Result<Option<Cid>> {
        check_key(key)?;
        let value = value.into();
        let link = match self.config.inline_link(&value) {
            Some(link) => link,
            None => Link::from_cid(&self.loader.store.put(Codec::Raw, value).await?),
        };
        Ok(self.insert_link(key, link).await?.map(|old| old.to_cid()))
    }

    /// Encodes `value` as DAG-CBOR, stores it as a raw block and maps `key` to it (py-hamt's
    /// default mode).
    ///
    /// # Errors
    /// [`Error::Encode`], and as [`insert`](Self::insert).
    pub async fn insert_cbor<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<Option<Cid>> {
        self.insert(key, encode_value(value)?).await
    }

    /// Maps `key` to an existing block, without storing anything (py-hamt's `_set_pointer`).
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub async fn insert_pointer(&mut self, key: &str, value: Cid) -> Result<Option<Cid>> {
        check_key(key)?;
        let old = self.insert_link(key, Link::from_cid(&value)).await?;
        Ok(old.map(|old| old.to_cid()))
    }

    async fn insert_link(&mut self, key: &str, value: Link) -> Result<Option<Link>> {
        let hash = key_hash(key);
        let max = self.config.max_bucket_size;
        // Most inserts route through in-memory nodes only. A stored node on the way stops
        // the first try before anything changed; it is loaded, and the second try cannot
        // meet one.
        let old = match insert_in(&mut self.root, 0, &hash, key, &value, max)? {
            Inserted::Done(old) => old,
            Inserted::Stored => {
                self.materialize(&hash, HASH_LEN).await?;
                match insert_in(&mut self.root, 0, &hash, key, &value, max)? {
                    Inserted::Done(old) => old,
                    Inserted::Stored => return Err(too_deep(None)),
                }
            }
        };
        self.root_cid = None;
        self.changes += 1;
        if old.is_none() {
            self.len = self.len.map(|n| n + 1);
        }
        Ok(old)
    }

    /// Inserts many key/value pairs, storing the values in concurrent batches.
    ///
    /// # Errors
    /// As [`insert`](Self::insert); pairs before the failing batch stay inserted.
    pub async fn extend<K, V, I>(&mut self, pairs: I) -> Result<()>
    where
        K: AsRef<str>,
        V: Into<Bytes>,
        I: IntoIterator<Item = (K, V)>,
    {
        const BATCH: usize = 4096;
        let mut pairs = pairs.into_iter().peekable();
        while pairs.peek().is_some() {
            let mut keys = Vec::with_capacity(BATCH);
            let mut inline = Vec::with_capacity(BATCH);
            let mut stored = Vec::new();
            for (key, value) in pairs.by_ref().take(BATCH) {
                let value: Bytes = value.into();
                let cid = self.config.inline(&value);
                if cid.is_none() {
                    stored.push((Codec::Raw, value));
                }
                keys.push(key);
                inline.push(cid);
            }
            let mut cids = self.loader.store.put_many(stored).await?.into_iter();
            for (key, cid) in keys.iter().zip(inline) {
                let Some(cid) = cid.or_else(|| cids.next()) else {
                    unreachable!("put_many returns one CID per block")
                };
                self.insert_pointer(key.as_ref(), cid).await?;
            }
        }
        Ok(())
    }

    /// Removes `key`, returning the CID of its value. The value block stays in the store
    /// (other keys or trees may share it).
    ///
    /// Like py-hamt 3.6, a subtree left with no more than `max_bucket_size` keys is folded
    /// back into a bucket of its parent, so the tree keeps the shape a fresh build would give.
    ///
    /// # Errors
    /// Store failures. On error the tree is unchanged.
    pub async fn remove(&mut self, key: &str) -> Result<Option<Cid>> {
        let hash = key_hash(key);
        let max = self.config.max_bucket_size;
        // All reads first, so a failing store leaves the tree as it was.
        let (old, collapse) = {
            let (path, found) = tree::route(self.tree(), &self.loader, &hash, key).await?;
            let Some(old) = found else {
                return Ok(None);
            };
            let mut collapse = None;
            for (depth, node) in path.iter().enumerate().skip(1) {
                // Counting first: on most routes the subtree is far too big, and building its
                // first entries would be wasted.
                if tree::count(node, max + 1, &self.loader).await?.is_none() {
                    continue;
                }
                if let Some(entries) = tree::collect(node, max + 1, &self.loader).await? {
                    collapse = Some((depth, entries));
                    break;
                }
            }
            (old, collapse)
        };
        if let Some((depth, mut entries)) = collapse {
            // The subtree at `depth` now holds few enough keys to be a bucket of its parent.
            self.materialize(&hash, depth - 1).await?;
            entries.retain(|e| &*e.key != key);
            let parent = route_mut(&mut self.root, &hash, depth - 1);
            let index = hash[depth - 1];
            if entries.is_empty() {
                parent.clear(index);
            } else {
                parent.set_bucket(index, &mut entries);
            }
        } else {
            self.materialize(&hash, HASH_LEN).await?;
            let depth = route_depth(&self.root, &hash);
            let node = route_mut(&mut self.root, &hash, depth);
            node.bucket_remove(hash[depth], key);
        }
        self.root_cid = None;
        self.changes += 1;
        self.len = self.len.map(|n| n.saturating_sub(1));
        Ok(Some(old.to_cid()))
    }

    /// Replaces the stored nodes along `hash`'s route, down to `max_depth`, with editable
    /// in-memory copies.
    async fn materialize(&mut self, hash: &[u8; HASH_LEN], max_depth: usize) -> Result<()> {
        loop {
            let depth = route_depth(&self.root, hash);
            if depth >= max_depth {
                return Ok(());
            }
            let node = route_mut(&mut self.root, hash, depth);
            let Some(Slot::Link(link)) = node.get(hash[depth]) else {
                return Ok(());
            };
            if depth + 1 >= HASH_LEN {
                // A well-formed tree is never deeper than the hash is long.
                return Err(too_deep(Some(link.to_cid())));
            }
            let link = link.clone();
            let child = self.loader.load(&link).await?;
            let child = Arc::unwrap_or_clone(child);
            let node = route_mut(&mut self.root, hash, depth);
            node.set_dirty(hash[depth], child);
        }
    }

    /// Number of keys. Counted by a walk the first time for an opened tree, then kept.
    ///
    /// # Errors
    /// Store failures.
    pub async fn len(&mut self) -> Result<u64> {
        if let Some(n) = self.len {
            return Ok(n);
        }
        let n = self.stats().await?.keys;
        self.len = Some(n);
        Ok(n)
    }

    /// True when the map has no keys.
    pub fn is_empty(&self) -> bool {
        self.root.is_empty()
    }

    /// Writes every changed node to the store and returns the root CID.
    ///
    /// Nodes are encoded and hashed here and stored with [`put_blocks`](BlockStore::put_blocks),
    /// a window of the root's subtrees at a time; a subtree is only marked clean once the
    /// store has taken its blocks, so a failed or dropped flush can be retried.
    ///
    /// # Errors
    /// Store failures.
    pub async fn flush(&mut self) -> Result<Cid> {
        if let Some(cid) = self.root_cid {
            return Ok(cid);
        }
        let hash_alg = self.loader.store.hash_alg();
        let store = self.loader.store.clone();
        let parallel = self.changes >= PARALLEL_FLUSH_CHANGES;
        // The root's changed subtrees are encoded a window at a time, on all cores, stored,
        // and then sealed: their nodes move into the cache sharing their blocks' bytes, so
        // memory holds the tree or its blocks, not both. A window is sealed on this thread
        // while the next one is encoded on the others. A failed store leaves the windows
        // before it sealed and stored, and the rest dirty for a retry; so does a flush
        // dropped while it waits for the store, as nothing is taken out of the tree across an
        // await. A subtree's own root is sealed where it stands (the cache gets a copy), so
        // even a panic while sealing leaves it a valid node.
        let dirty = self.root.dirty_indices();
        let windows: Vec<&[u8]> = dirty.chunks(FLUSH_WINDOW).collect();
        // The window last stored, with its blocks, to be sealed.
        let mut stored: Option<(&[u8], Vec<SubtreeBlocks>)> = None;
        for next in 0..=windows.len() {
            let encode = windows.get(next).copied().unwrap_or_default();
            let (sealing, blocks) = stored.take().unwrap_or_default();
            let (sealed, encoded) = {
                let mut to_seal = Vec::new();
                let mut to_encode = Vec::new();
                for (index, child) in self.root.dirty_children_mut() {
                    if sealing.contains(&index) {
                        to_seal.push(child);
                    } else if encode.contains(&index) {
                        to_encode.push(&*child);
                    }
                }
                let cache = &self.loader.cache;
                let mut sealed = Vec::with_capacity(blocks.len());
                let encoded = encode_subtrees(&to_encode, hash_alg, parallel, || {
                    for (child, links) in to_seal.into_iter().zip(blocks) {
                        let link = seal_nodes(child, &mut links.into_iter(), cache);
                        cache.insert(link.clone(), Arc::new(child.clone()));
                        sealed.push(link);
                    }
                });
                (sealed, encoded)
            };
            for (&index, link) in sealing.iter().zip(sealed) {
                // The child is clean now and its copy cached; its link takes its place.
                self.root.seal_child(index, |_| link);
            }
            if encode.is_empty() {
                break;
            }
            let mut batch = Vec::new();
            let mut links = Vec::with_capacity(encode.len());
            for blocks in encoded {
                links.push(
                    blocks
                        .iter()
                        .map(|b| (Link::from_cid(b.cid()), b.data().clone()))
                        .collect(),
                );
                batch.extend(blocks);
            }
            store.put_blocks(batch).await?;
            stored = Some((encode, links));
        }
        let bytes = self
            .root
            .encode_with(|_| unreachable!("every child of the root is sealed"));
        let root_block = Block::new(hash_alg, Codec::DagCbor, Bytes::from(bytes));
        let root = *root_block.cid();
        let root_bytes = root_block.data().clone();
        store.put_blocks(vec![root_block]).await?;
        self.root.rebase(root_bytes);
        self.root_cid = Some(root);
        self.changes = 0;
        Ok(root)
    }

    /// Flushes, then returns a cheap, cloneable read-only handle on the root that shares this
    /// tree's node cache.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub async fn reader(&mut self) -> Result<HamtReader> {
        let root = self.flush().await?;
        Ok(HamtReader {
            loader: self.loader.clone(),
            root,
            node: Arc::new(self.root.clone()),
        })
    }

    /// Drops every cached node (dirty nodes stay).
    pub fn clear_cache(&self) {
        self.loader.cache.clear();
    }

    /// Bytes held by the node cache (an estimate).
    pub fn cache_bytes(&self) -> usize {
        self.loader.cache.bytes()
    }
}

/// Refuses keys too long for a node's 32-bit offsets.
fn check_key(key: &str) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::Encode {
            reason: format!(
                "a key of {} bytes: keys are limited to {MAX_KEY_LEN} bytes",
                key.len()
            ),
        });
    }
    Ok(())
}

/// How deep `hash`'s route runs through in-memory nodes.
fn route_depth(root: &Node, hash: &[u8; HASH_LEN]) -> usize {
    let mut node = root;
    let mut depth = 0;
    while let Some(Slot::Dirty(child)) = node.get(hash[depth]) {
        node = child;
        depth += 1;
    }
    depth
}

/// The in-memory node at `depth` on `hash`'s route; the route must be in memory that far.
fn route_mut<'a>(root: &'a mut Node, hash: &[u8; HASH_LEN], depth: usize) -> &'a mut Node {
    let mut node = root;
    for &index in &hash[..depth] {
        match node.child_mut(index) {
            Some(child) => node = child,
            None => unreachable!("route_mut is only called on materialized routes"),
        }
    }
    node
}

/// What [`insert_in`] did.
enum Inserted {
    /// The key is in place; its old value, if it had one.
    Done(Option<Link>),
    /// Nothing: the route reaches a stored node, to be loaded first.
    Stored,
}

fn insert_in(
    node: &mut Node,
    depth: usize,
    hash: &[u8; HASH_LEN],
    key: &str,
    value: &Link,
    max: usize,
) -> Result<Inserted> {
    let index = hash[depth];
    if let Some(child) = node.child_mut(index) {
        return insert_in(child, depth + 1, hash, key, value, max);
    }
    match node.get(index) {
        None => {
            node.set_single(index, key, value);
            Ok(Inserted::Done(None))
        }
        Some(Slot::Link(_)) => Ok(Inserted::Stored),
        Some(Slot::Dirty(_)) => unreachable!("dirty children are handled above"),
        Some(Slot::Bucket(_)) => match node.bucket_insert(index, key, value, max) {
            Insert::Replaced(old) => Ok(Inserted::Done(Some(old))),
            Insert::Added => Ok(Inserted::Done(None)),
            Insert::Full => {
                let Some(Slot::Bucket(bucket)) = node.get(index) else {
                    unreachable!("the slot holds a full bucket")
                };
                let mut all: Vec<Entry> = bucket.entries().collect();
                all.push(Entry {
                    key: key.into(),
                    value: value.clone(),
                });
                let child = build(all, depth + 1, max)?;
                node.set_dirty(index, child);
                Ok(Inserted::Done(None))
            }
        },
    }
}

/// The subtree holding `entries` at `depth`: what py-hamt builds when a bucket overflows.
fn build(entries: Vec<Entry>, depth: usize, max: usize) -> Result<Node> {
    if depth >= HASH_LEN {
        let key = entries
            .first()
            .map(|e| e.key.to_string())
            .unwrap_or_default();
        return Err(Error::HashExhausted { key });
    }
    let mut groups: Vec<(u8, Entry)> = entries
        .into_iter()
        .map(|e| (key_hash(&e.key)[depth], e))
        .collect();
    groups.sort_by_key(|(index, _)| *index);
    // Room for twice the entries: a split node usually keeps filling.
    let bytes: usize = groups.iter().map(|(_, e)| e.key.len() + 48).sum();
    let mut node = Node::with_capacity(2 * bytes + 16);
    let mut groups = groups.into_iter().peekable();
    while let Some((index, first)) = groups.next() {
        let mut group = vec![first];
        while let Some((_, e)) = groups.next_if(|(i, _)| *i == index) {
            group.push(e);
        }
        if group.len() <= max {
            node.set_bucket(index, &mut group);
        } else {
            node.set_dirty(index, build(group, depth + 1, max)?);
        }
    }
    Ok(node)
}

/// A flushed subtree's blocks as links and bytes, in the order [`seal_nodes`] takes them.
type SubtreeBlocks = Vec<(Link, Bytes)>;

/// How many of the root's changed subtrees [`Hamt::flush`] encodes before storing them.
const FLUSH_WINDOW: usize = 16;

/// Below this many changes a flush is too small to gain from more threads.
const PARALLEL_FLUSH_CHANGES: usize = 50_000;

/// The dirty nodes of some subtrees in post-order (children first), each with the positions
/// of its dirty children.
#[derive(Default)]
struct PostOrder<'a> {
    nodes: Vec<&'a Node>,
    /// `kids[i]` is the range of `kid_positions` holding node `i`'s dirty children.
    kids: Vec<std::ops::Range<usize>>,
    kid_positions: Vec<usize>,
}

impl<'a> PostOrder<'a> {
    /// Adds `node` and its dirty descendants; returns `node`'s position.
    fn add(&mut self, node: &'a Node) -> usize {
        let mut mine = Vec::new();
        for child in node.dirty_children() {
            mine.push(self.add(child));
        }
        let start = self.kid_positions.len();
        self.kid_positions.extend(mine);
        self.kids.push(start..self.kid_positions.len());
        self.nodes.push(node);
        self.nodes.len() - 1
    }
}

/// Encodes and hashes each subtree: its blocks, children first (the order
/// [`seal_nodes`] consumes them), the subtree's own root last.
///
/// The subtrees are encoded and hashed on other threads when `parallel`, while this thread
/// runs `alongside` (sealing the previous window); otherwise `alongside` runs first. Every
/// block's buffer is allocated here first, at its exact size: blocks then come from this
/// thread's allocator arena, where the buffers freed by sealing the windows two or more
/// before are reused, and a flush adds little more than a window to the memory the tree
/// already held.
fn encode_subtrees(
    nodes: &[&Node],
    hash_alg: HashAlg,
    parallel: bool,
    alongside: impl FnOnce(),
) -> Vec<Vec<Block>> {
    let mut order = PostOrder::default();
    let bounds: Vec<usize> = std::iter::once(0)
        .chain(nodes.iter().map(|n| order.add(n) + 1))
        .collect();
    let mut buffers: Vec<Vec<u8>> = order
        .nodes
        .iter()
        .map(|n| Vec::with_capacity(n.encoded_len()))
        .collect();
    let mut cids: Vec<Option<Cid>> = vec![None; order.nodes.len()];
    // Encodes the nodes from `first` on into `buffers` and `cids`, which start at `first`: a
    // run of whole subtrees, so every child is in the run, before its parent.
    let encode = |first: usize, buffers: &mut [Vec<u8>], cids: &mut [Option<Cid>]| {
        for at in 0..buffers.len() {
            let i = first + at;
            let mut kids = order.kid_positions[order.kids[i].clone()].iter();
            let mut out = std::mem::take(&mut buffers[at]);
            order.nodes[i].encode_into(&mut out, |_| {
                let cid = kids
                    .next()
                    .and_then(|&k| cids[k - first].as_ref())
                    .unwrap_or_else(|| unreachable!("children come first in post-order"));
                Link::from_cid(cid)
            });
            cids[at] = Some(hash_alg.cid(Codec::DagCbor, &out));
            buffers[at] = out;
        }
    };
    let threads = if parallel {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(nodes.len())
    } else {
        1
    };
    if threads <= 1 {
        alongside();
        encode(0, &mut buffers, &mut cids);
    } else {
        // Whole subtrees per thread, about the same number of nodes each.
        let per_thread = order.nodes.len().div_ceil(threads);
        let mut cuts = vec![0];
        for &b in &bounds[1..] {
            if b - cuts.last().copied().unwrap_or(0) >= per_thread || b == order.nodes.len() {
                cuts.push(b);
            }
        }
        std::thread::scope(|scope| {
            let mut rest_b = &mut buffers[..];
            let mut rest_c = &mut cids[..];
            let mut handles = Vec::new();
            for pair in cuts.windows(2) {
                let (b, tail_b) = std::mem::take(&mut rest_b).split_at_mut(pair[1] - pair[0]);
                let (c, tail_c) = std::mem::take(&mut rest_c).split_at_mut(pair[1] - pair[0]);
                (rest_b, rest_c) = (tail_b, tail_c);
                let first = pair[0];
                handles.push(scope.spawn(move || encode(first, b, c)));
            }
            alongside();
            for h in handles {
                h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            }
        });
    }
    let mut blocks = cids.into_iter().zip(buffers).map(|(cid, data)| match cid {
        Some(cid) => Block::hashed(cid, Bytes::from(data)),
        None => unreachable!("every node is encoded"),
    });
    bounds
        .windows(2)
        .map(|w| blocks.by_ref().take(w[1] - w[0]).collect())
        .collect()
}

/// Seals `node`, a dirty subtree whose blocks `blocks` yields in the order
/// [`encode_subtrees`] made them (children first): every node is re-pointed at its block,
/// its dirty descendants are moved into the cache, and the link to `node` is returned.
/// `node` itself stays where it is, clean.
fn seal_nodes(
    node: &mut Node,
    blocks: &mut impl Iterator<Item = (Link, Bytes)>,
    cache: &NodeCache,
) -> Link {
    node.seal_children(|mut child| {
        let link = seal_nodes(&mut child, blocks, cache);
        cache.insert(link.clone(), Arc::new(child));
        link
    });
    let Some((link, block)) = blocks.next() else {
        unreachable!("encode_subtrees made one block per dirty node")
    };
    node.rebase(block);
    link
}

fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_ipld_dagcbor::to_vec(value).map_err(|e| Error::Encode {
        reason: e.to_string(),
    })
}

fn decode_value<T: DeserializeOwned>(bytes: Option<Bytes>) -> Result<Option<T>> {
    bytes
        .map(|b| {
            serde_ipld_dagcbor::from_slice(&b).map_err(|e| Error::decode("DAG-CBOR value", None, e))
        })
        .transpose()
}

/// A read-only handle on a flushed HAMT root. Cloning is cheap; clones share the node cache,
/// so many tasks can read the same tree at once.
#[derive(Debug, Clone)]
pub struct HamtReader {
    loader: Loader,
    root: Cid,
    node: Arc<Node>,
}

impl HamtReader {
    /// Opens the tree at `root` with a default-sized cache.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the store lacks the root block, [`Error::Decode`] when it is
    /// not a HAMT node.
    pub async fn open(store: Arc<dyn BlockStore>, root: Cid) -> Result<Self> {
        Self::open_with_config(store, root, Config::default()).await
    }

    /// Opens the tree at `root`; only the cache budget of `config` matters for reading.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn open_with_config(
        store: Arc<dyn BlockStore>,
        root: Cid,
        config: Config,
    ) -> Result<Self> {
        let loader = Loader {
            store,
            cache: Arc::new(NodeCache::new(config.cache_bytes)),
        };
        let node = loader.load_cid(&root).await?;
        Ok(Self { loader, root, node })
    }

    /// The root CID.
    pub fn root(&self) -> Cid {
        self.root
    }

    /// The store the tree lives in.
    pub fn store(&self) -> &Arc<dyn BlockStore> {
        &self.loader.store
    }

    fn tree(&self) -> NodeRef<'_> {
        NodeRef::Mem(&self.node)
    }

    read_methods!();

    /// Number of keys (a walk of every node).
    ///
    /// # Errors
    /// Store failures.
    pub async fn len(&self) -> Result<u64> {
        Ok(self.stats().await?.keys)
    }

    /// True when the map has no keys.
    pub fn is_empty(&self) -> bool {
        self.node.is_empty()
    }
}
