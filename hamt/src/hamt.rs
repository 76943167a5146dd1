//! The HAMT: [`Hamt`] to read and write, [`HamtReader`] to share a flushed root.

use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use futures::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::block::{Codec, MAX_INLINE, identity_cid};
use crate::cache::Loader;
use crate::error::{Error, Result};
use crate::flush;
use crate::link::Link;
use crate::node::{Entry, HASH_LEN, Insert, MAX_KEY_LEN, Node, Slot, key_hash};
use crate::read::Reads;
use crate::store::BlockStore;
use crate::tree::{self, NodeRef, Stats, too_deep};

/// Tuning knobs of a HAMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    max_bucket_size: usize,
    /// A cache of the handle's own of this many bytes; `None`, the default, shares the
    /// store's ([`Config::shared_cache`]).
    cache_bytes: Option<usize>,
    inline_values: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_bucket_size: 4,
            cache_bytes: None,
            inline_values: 0,
        }
    }
}

impl Config {
    /// The size of the node cache every handle on a store shares (256 MiB), and a good size
    /// for a handle's own ([`Config::cache_bytes`]).
    pub const SHARED_CACHE_BYTES: usize = crate::cache::SHARED_CACHE_BYTES;

    /// py-hamt's bucket size (4) and the store's shared node cache of 256 MiB
    /// ([`Config::shared_cache`]): enough for the nodes of a tree of about 2 million keys, so
    /// random reads of such a tree hit the cache, whichever handle on the store made them.
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

    /// A decoded-node cache of the handle's own, of this many bytes, instead of the store's
    /// shared one: for a handle whose reads must not evict other handles' nodes, or that
    /// must start cold (a benchmark).
    #[must_use]
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = Some(bytes);
        self
    }

    /// Shares one node cache of 256 MiB with every other handle on the same store (the
    /// same `Arc`) that does, readers and writers: the default, undoing
    /// [`Config::cache_bytes`]. A tree opened again, or by another task (a server's
    /// requests), starts warm while some handle on the store is alive. Nodes are
    /// content-addressed, so what one handle cached is right for every other.
    #[must_use]
    pub fn shared_cache(mut self) -> Self {
        self.cache_bytes = None;
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

    /// The bucket size, for the crate's other tree builders (the merge).
    pub(crate) fn bucket_limit(self) -> usize {
        self.max_bucket_size
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
            loader: Loader::with_cache(store, config.cache_bytes),
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

    /// The reads of this tree.
    fn reads(&self) -> Reads<'_> {
        Reads::new(&self.root, self.root_cid, &self.loader)
    }

    /// The value bytes of `key` (for a value stored as a UnixFS file, the file's bytes).
    ///
    /// # Errors
    /// Store failures, including a missing node or value block.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.reads().get(key).await
    }

    /// The value of `key`, decoded from DAG-CBOR.
    ///
    /// # Errors
    /// As [`get`](Self::get), and [`Error::Decode`] when the value does not decode as `T`.
    pub async fn get_cbor<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.reads().get_cbor(key).await
    }

    /// The CID of the value block of `key`.
    ///
    /// # Errors
    /// Store failures.
    pub async fn get_pointer(&self, key: &str) -> Result<Option<Cid>> {
        self.reads().get_pointer(key).await
    }

    /// True when `key` is in the map.
    ///
    /// # Errors
    /// Store failures.
    pub async fn contains_key(&self, key: &str) -> Result<bool> {
        self.reads().contains_key(key).await
    }

    /// The values of many keys, in the order of `keys` (`None` for a key that is not
    /// there). The lookups walk the tree together: the nodes all of them need at one level
    /// are fetched in one batch, then every value in one batch, so `n` cold lookups cost
    /// about as many round trips as the tree has levels, plus one — not `n` times that.
    ///
    /// # Errors
    /// Store failures, including a missing node or value block.
    pub async fn get_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<Bytes>>> {
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        self.reads().get_many(&keys).await
    }

    /// The CIDs of the value blocks of many keys, in the order of `keys`, looked up together
    /// as [`get_many`](Self::get_many) does, without fetching the values.
    ///
    /// # Errors
    /// Store failures.
    pub async fn get_pointers<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<Cid>>> {
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        self.reads().get_pointers(&keys).await
    }

    /// Every key, depth first, in py-hamt's order (a node's bucket keys in slot order, then
    /// its children from the highest slot down).
    pub fn keys(&self) -> impl Stream<Item = Result<String>> + '_ {
        self.reads().keys()
    }

    /// Every key with the CID of its value.
    pub fn pointers(&self) -> impl Stream<Item = Result<(String, Cid)>> + '_ {
        self.reads().pointers()
    }

    /// Every key with its value bytes; values are fetched concurrently.
    // A `Stream` is the async iterator; `iter` is the name users look for.
    #[allow(clippy::iter_not_returning_iterator)]
    pub fn iter(&self) -> impl Stream<Item = Result<(String, Bytes)>> + '_ {
        self.reads().values()
    }

    /// Counts keys, nodes and levels.
    ///
    /// # Errors
    /// Store failures.
    pub async fn stats(&self) -> Result<Stats> {
        self.reads().stats().await
    }

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
        let root = flush::write(&mut self.root, &self.loader, self.changes).await?;
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

    /// Drops every cached node (dirty nodes stay; of the store's shared cache, unless the
    /// map was opened with [`Config::cache_bytes`]).
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
pub(crate) fn build(entries: Vec<Entry>, depth: usize, max: usize) -> Result<Node> {
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

fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_ipld_dagcbor::to_vec(value).map_err(|e| Error::Encode {
        reason: e.to_string(),
    })
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
        let loader = Loader::with_cache(store, config.cache_bytes);
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

    /// The reads of this tree.
    fn reads(&self) -> Reads<'_> {
        Reads::new(&self.node, Some(self.root), &self.loader)
    }

    /// The value bytes of `key`, as [`Hamt::get`].
    ///
    /// # Errors
    /// As [`Hamt::get`].
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.reads().get(key).await
    }

    /// The value of `key`, decoded from DAG-CBOR, as [`Hamt::get_cbor`].
    ///
    /// # Errors
    /// As [`Hamt::get_cbor`].
    pub async fn get_cbor<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.reads().get_cbor(key).await
    }

    /// The CID of the value block of `key`, as [`Hamt::get_pointer`].
    ///
    /// # Errors
    /// As [`Hamt::get_pointer`].
    pub async fn get_pointer(&self, key: &str) -> Result<Option<Cid>> {
        self.reads().get_pointer(key).await
    }

    /// True when `key` is in the map, as [`Hamt::contains_key`].
    ///
    /// # Errors
    /// As [`Hamt::contains_key`].
    pub async fn contains_key(&self, key: &str) -> Result<bool> {
        self.reads().contains_key(key).await
    }

    /// The values of many keys, looked up together, as [`Hamt::get_many`].
    ///
    /// # Errors
    /// As [`Hamt::get_many`].
    pub async fn get_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<Bytes>>> {
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        self.reads().get_many(&keys).await
    }

    /// The CIDs of the values of many keys, looked up together, as [`Hamt::get_pointers`].
    ///
    /// # Errors
    /// As [`Hamt::get_pointers`].
    pub async fn get_pointers<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<Cid>>> {
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        self.reads().get_pointers(&keys).await
    }

    /// The path to `key`: the CIDs of the nodes from the root down to the one holding the
    /// key (the root first), and the CID of its value; `None` when the key is not there.
    /// These are the blocks a trustless client needs to check the value against the root.
    ///
    /// # Errors
    /// Store failures (a missing node on the way).
    pub async fn path(&self, key: &str) -> Result<Option<(Vec<Cid>, Cid)>> {
        self.reads().path(key).await
    }

    /// Bytes held by the node cache (an estimate): the store's shared cache unless the
    /// reader was opened with [`Config::cache_bytes`].
    pub fn cache_bytes(&self) -> usize {
        self.loader.cache.bytes()
    }

    /// Drops every cached node (of the store's shared cache, unless the reader was opened
    /// with [`Config::cache_bytes`]).
    pub fn clear_cache(&self) {
        self.loader.cache.clear();
    }

    /// Every key, in py-hamt's order, as [`Hamt::keys`].
    pub fn keys(&self) -> impl Stream<Item = Result<String>> + '_ {
        self.reads().keys()
    }

    /// Every key with the CID of its value, as [`Hamt::pointers`].
    pub fn pointers(&self) -> impl Stream<Item = Result<(String, Cid)>> + '_ {
        self.reads().pointers()
    }

    /// Every key with its value bytes, as [`Hamt::iter`].
    // A `Stream` is the async iterator; `iter` is the name users look for.
    #[allow(clippy::iter_not_returning_iterator)]
    pub fn iter(&self) -> impl Stream<Item = Result<(String, Bytes)>> + '_ {
        self.reads().values()
    }

    /// Counts keys, nodes and levels, as [`Hamt::stats`].
    ///
    /// # Errors
    /// As [`Hamt::stats`].
    pub async fn stats(&self) -> Result<Stats> {
        self.reads().stats().await
    }

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
