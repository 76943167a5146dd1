//! Three-way merge of HAMT roots: the changes from a common base to each of two trees,
//! combined into one tree by walking the three trees together.
//!
//! At every node the three versions are compared slot by slot. A slot that is the same in
//! two of the three is decided without looking inside it: equal in ours and theirs, it is
//! ours; unchanged on one side, it is the other side's. Only slots changed differently on
//! both sides are opened, so the work follows the size of the two changes, not of the
//! trees. Inside such a slot the keys are merged one by one the same way; a key changed
//! differently on both sides is a [`Conflict`].
//!
//! The result is canonical: the tree a fresh build of the merged contents gives, whatever
//! the order of inserts, for trees written with the same bucket size. A slot holds a bucket
//! exactly when at most `max_bucket_size` keys fall in it (that is how py-hamt 3.6 shapes a
//! tree, splitting full buckets and folding small subtrees back), so a merged subtree left
//! with few keys is folded into a bucket and a merged bucket that grew too big is split.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use cid::Cid;
use futures::future::BoxFuture;
use futures::{StreamExt as _, TryStreamExt as _};

use crate::cache::Loader;
use crate::error::{Error, Result};
use crate::flush;
use crate::hamt::{Config, build};
use crate::link::Link;
use crate::node::{Entry, HASH_LEN, Node, Slot, key_hash, key_order};
use crate::store::BlockStore;

/// Node cache of one merge: the walk reads each node once, so this only has to hold the
/// nodes of the subtrees being merged at a time.
const MERGE_CACHE: usize = 32 << 20;

/// Subtrees merged at once under one node.
const CONCURRENCY: usize = 16;

/// A key changed differently on both sides of a merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The key.
    pub key: String,
    /// Its value CID in the base, `None` when the base lacks it.
    pub base: Option<Cid>,
    /// Its value CID in ours, `None` when ours removed it (or never had it).
    pub ours: Option<Cid>,
    /// Its value CID in theirs, `None` when theirs removed it (or never had it).
    pub theirs: Option<Cid>,
}

/// What a [`merge`] gave.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum MergeOutcome {
    /// The merged tree's root, written to the store.
    Merged(Cid),
    /// Keys changed differently on both sides, in key order (shorter keys first, as in
    /// DAG-CBOR maps); nothing was written.
    Conflicts(Vec<Conflict>),
}

impl MergeOutcome {
    /// The merged root, or `None` when the merge conflicted.
    pub fn root(&self) -> Option<Cid> {
        match self {
            MergeOutcome::Merged(root) => Some(*root),
            MergeOutcome::Conflicts(_) => None,
        }
    }
}

/// Merges the changes from `base` to `ours` and from `base` to `theirs`, for trees written
/// with py-hamt's default bucket size (4); see [`merge_with_config`].
///
/// # Errors
/// As [`merge_with_config`].
pub async fn merge(
    store: Arc<dyn BlockStore>,
    base: Cid,
    ours: Cid,
    theirs: Cid,
) -> Result<MergeOutcome> {
    merge_with_config(store, Config::default(), base, ours, theirs).await
}

/// Merges the changes from `base` to `ours` and from `base` to `theirs` into one tree.
///
/// A key changed on one side only takes that side's value (or is removed, if that side
/// removed it); a key changed the same way on both sides takes that value; a key changed
/// differently on both sides (two values, or a value and a removal) is a [`Conflict`], and
/// every conflicting key is reported. Subtrees equal in two of the three trees are decided
/// without being read. The merged root is canonical for `config`'s bucket size: it equals
/// the root of the merged contents built from scratch. Only new nodes are written; values
/// are never copied.
///
/// The three trees must have been written with `config`'s bucket size (any tree this crate
/// or py-hamt writes with it is).
///
/// # Errors
/// Store failures (a missing node is [`Error::NotFound`]); [`Error::Decode`] for a block
/// that is not a HAMT node; [`Error::InvalidConfig`]; [`Error::HashExhausted`] as for
/// inserts.
pub async fn merge_with_config(
    store: Arc<dyn BlockStore>,
    config: Config,
    base: Cid,
    ours: Cid,
    theirs: Cid,
) -> Result<MergeOutcome> {
    let max = config.bucket_limit();
    if !(1..=255).contains(&max) {
        return Err(Error::InvalidConfig(
            "max_bucket_size must be between 1 and 255".into(),
        ));
    }
    if ours == theirs || base == theirs {
        return Ok(MergeOutcome::Merged(ours));
    }
    if base == ours {
        return Ok(MergeOutcome::Merged(theirs));
    }
    let ctx = Ctx {
        loader: Loader::new(store, MERGE_CACHE),
        max,
        conflicts: Mutex::new(Vec::new()),
        merged_keys: AtomicUsize::new(0),
    };
    let links = [base, ours, theirs].map(|c| Link::from_cid(&c));
    let nodes = ctx.loader.load_many(&links).await?;
    let views = [0, 1, 2].map(|i| View::Node(links[i].clone(), nodes[i].clone()));
    let out = merge_node(&ctx, 0, views, false).await?;
    let mut conflicts =
        std::mem::take(&mut *ctx.conflicts.lock().unwrap_or_else(PoisonError::into_inner));
    if !conflicts.is_empty() {
        conflicts.sort_by(|a, b| key_order(&a.key, &b.key));
        return Ok(MergeOutcome::Conflicts(conflicts));
    }
    let root = match out {
        Out::Link(link) => link.to_cid(),
        Out::Node(mut node) => {
            let changes = ctx.merged_keys.load(Ordering::Relaxed);
            flush::write(&mut node, &ctx.loader, changes).await?
        }
        // The root is never folded into a bucket.
        Out::Empty | Out::Small(_) => unreachable!("merge_node keeps the root a node"),
    };
    Ok(MergeOutcome::Merged(root))
}

/// What one merge shares.
struct Ctx {
    loader: Loader,
    max: usize,
    conflicts: Mutex<Vec<Conflict>>,
    /// Keys merged one by one: the size of the flush to come.
    merged_keys: AtomicUsize,
}

/// One tree's version of a position in the trie.
enum View {
    /// Nothing there.
    Empty,
    /// A stored node, with the link it was read through.
    Node(Link, Arc<Node>),
    /// A bucket facing nodes on another side: its entries spread by the next byte of their
    /// key hash, as a node one level down would hold them.
    Spread(BTreeMap<u8, Vec<Entry>>),
}

impl View {
    /// `entries` (of one slot at `depth - 1`) as the node at `depth` would hold them.
    fn spread(entries: Vec<Entry>, depth: usize) -> View {
        let mut groups: BTreeMap<u8, Vec<Entry>> = BTreeMap::new();
        for entry in entries {
            groups
                .entry(key_hash(&entry.key)[depth])
                .or_default()
                .push(entry);
        }
        // Entries come in key order and keep it within each group.
        View::Spread(groups)
    }

    fn slot(&self, index: u8) -> SlotView {
        match self {
            View::Empty => SlotView::Empty,
            View::Node(_, node) => match node.get(index) {
                None => SlotView::Empty,
                Some(Slot::Bucket(bucket)) => SlotView::Bucket(bucket.entries().collect()),
                Some(Slot::Link(link)) => SlotView::Link(link),
                Some(Slot::Dirty(_)) => unreachable!("stored nodes never hold dirty children"),
            },
            View::Spread(groups) => groups
                .get(&index)
                .map_or(SlotView::Empty, |g| SlotView::Bucket(g.clone())),
        }
    }

    fn link(&self) -> Option<&Link> {
        match self {
            View::Node(link, _) => Some(link),
            View::Empty | View::Spread(_) => None,
        }
    }
}

/// One tree's version of one slot.
#[derive(Clone, PartialEq, Eq)]
enum SlotView {
    Empty,
    /// Entries in key order; never empty.
    Bucket(Vec<Entry>),
    /// A stored child node.
    Link(Link),
}

impl SlotView {
    fn into_entries(self) -> Vec<Entry> {
        match self {
            SlotView::Bucket(entries) => entries,
            SlotView::Empty | SlotView::Link(_) => Vec::new(),
        }
    }

    fn into_out(self) -> Out {
        match self {
            SlotView::Empty => Out::Empty,
            SlotView::Bucket(entries) => Out::Small(entries),
            SlotView::Link(link) => Out::Link(link),
        }
    }
}

/// What merging one position gave.
enum Out {
    Empty,
    /// At most `max` entries, in key order: a bucket of the parent.
    Small(Vec<Entry>),
    /// A stored node of one of the trees, unchanged.
    Link(Link),
    /// A new subtree of more than `max` entries.
    Node(Box<Node>),
}

impl Out {
    /// True when this result is exactly `slot`.
    fn is(&self, slot: &SlotView) -> bool {
        match (self, slot) {
            (Out::Empty, SlotView::Empty) => true,
            (Out::Small(a), SlotView::Bucket(b)) => a == b,
            (Out::Link(a), SlotView::Link(b)) => a == b,
            _ => false,
        }
    }
}

/// Merges the three versions of the node at `depth`. With `fold`, a result of at most `max`
/// entries comes back as [`Out::Small`] (or [`Out::Empty`]) for the parent to hold as a
/// bucket; a result equal to one side's stored node comes back as its link.
fn merge_node(ctx: &Ctx, depth: usize, views: [View; 3], fold: bool) -> BoxFuture<'_, Result<Out>> {
    Box::pin(async move {
        let mut results: Vec<(u8, Out)> = Vec::new();
        let mut open = Vec::new();
        // Whether the result so far is ours' node, or theirs', slot for slot.
        let mut same = [views[1].link().is_some(), views[2].link().is_some()];
        for index in 0..=255u8 {
            let slots = [0, 1, 2].map(|i| views[i].slot(index));
            let [base, ours, theirs] = &slots;
            let decided = if ours == theirs || base == theirs {
                Some(ours)
            } else if base == ours {
                Some(theirs)
            } else {
                None
            };
            match decided {
                Some(slot) => {
                    same[0] &= slot == ours;
                    same[1] &= slot == theirs;
                    if *slot != SlotView::Empty {
                        results.push((index, slot.clone().into_out()));
                    }
                }
                None => open.push((index, slots)),
            }
        }
        let opened: Vec<(u8, Out, bool, bool)> = futures::stream::iter(open)
            .map(|(index, slots)| async move {
                let out = merge_slot(ctx, depth, slots.clone()).await?;
                let (o, t) = (out.is(&slots[1]), out.is(&slots[2]));
                Ok::<_, Error>((index, out, o, t))
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        for (index, out, o, t) in opened {
            same[0] &= o;
            same[1] &= t;
            if !matches!(out, Out::Empty) {
                results.push((index, out));
            }
        }
        for (side, view) in [&views[1], &views[2]].into_iter().enumerate() {
            if same[side]
                && let Some(link) = view.link()
            {
                return Ok(Out::Link(link.clone()));
            }
        }
        results.sort_by_key(|(index, _)| *index);
        if fold {
            let small = results
                .iter()
                .map(|(_, out)| match out {
                    Out::Small(entries) => Some(entries.len()),
                    _ => None,
                })
                .try_fold(0, |sum, n| n.map(|n| sum + n));
            if let Some(total) = small.filter(|n| *n <= ctx.max) {
                if total == 0 {
                    return Ok(Out::Empty);
                }
                let mut entries: Vec<Entry> = results
                    .into_iter()
                    .flat_map(|(_, out)| match out {
                        Out::Small(entries) => entries,
                        _ => Vec::new(),
                    })
                    .collect();
                entries.sort_by(|a, b| key_order(&a.key, &b.key));
                return Ok(Out::Small(entries));
            }
        }
        let mut node = Node::default();
        for (index, out) in results {
            match out {
                Out::Empty => {}
                Out::Small(mut entries) => node.set_bucket(index, &mut entries),
                Out::Link(link) => node.set_link(index, &link),
                Out::Node(child) => node.set_dirty(index, *child),
            }
        }
        Ok(Out::Node(Box::new(node)))
    })
}

/// Merges one slot of the node at `depth` that changed differently on both sides.
async fn merge_slot(ctx: &Ctx, depth: usize, slots: [SlotView; 3]) -> Result<Out> {
    if !slots.iter().any(|s| matches!(s, SlotView::Link(_))) {
        let [base, ours, theirs] = slots.map(SlotView::into_entries);
        let merged = merge_entries(ctx, base, ours, theirs);
        ctx.merged_keys.fetch_add(merged.len(), Ordering::Relaxed);
        return Ok(if merged.is_empty() {
            Out::Empty
        } else if merged.len() <= ctx.max {
            Out::Small(merged)
        } else {
            Out::Node(Box::new(build(merged, depth + 1, ctx.max)?))
        });
    }
    if depth + 1 >= HASH_LEN {
        return Err(Error::decode(
            "HAMT",
            None,
            "the tree is deeper than the 32-byte key hash allows",
        ));
    }
    let links: Vec<Link> = slots
        .iter()
        .filter_map(|s| match s {
            SlotView::Link(link) => Some(link.clone()),
            _ => None,
        })
        .collect();
    let mut nodes = ctx.loader.load_many(&links).await?.into_iter();
    let mut views = Vec::with_capacity(3);
    for slot in slots {
        views.push(match slot {
            SlotView::Empty => View::Empty,
            SlotView::Bucket(entries) => View::spread(entries, depth + 1),
            SlotView::Link(link) => match nodes.next() {
                Some(node) => View::Node(link, node),
                None => unreachable!("load_many returns one node per link"),
            },
        });
    }
    let Ok(views) = <[View; 3]>::try_from(views) else {
        unreachable!("three views for three slots")
    };
    merge_node(ctx, depth + 1, views, true).await
}

/// Merges three versions of a few keys, key by key; records the conflicts.
fn merge_entries(ctx: &Ctx, base: Vec<Entry>, ours: Vec<Entry>, theirs: Vec<Entry>) -> Vec<Entry> {
    let mut keys: BTreeMap<KeyOrder, [Option<Link>; 3]> = BTreeMap::new();
    for (side, entries) in [base, ours, theirs].into_iter().enumerate() {
        for entry in entries {
            keys.entry(KeyOrder(entry.key)).or_default()[side] = Some(entry.value);
        }
    }
    let mut merged = Vec::with_capacity(keys.len());
    let mut conflicts = Vec::new();
    for (KeyOrder(key), [base, ours, theirs]) in keys {
        let value = if ours == theirs || base == theirs {
            ours
        } else if base == ours {
            theirs
        } else {
            let cid = |l: &Option<Link>| l.as_ref().map(Link::to_cid);
            conflicts.push(Conflict {
                key: key.to_string(),
                base: cid(&base),
                ours: cid(&ours),
                theirs: cid(&theirs),
            });
            ours
        };
        if let Some(value) = value {
            merged.push(Entry { key, value });
        }
    }
    if !conflicts.is_empty() {
        ctx.conflicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(conflicts);
    }
    merged
}

/// A key ordered as DAG-CBOR orders map keys (and buckets hold them).
#[derive(PartialEq, Eq)]
struct KeyOrder(Box<str>);

impl Ord for KeyOrder {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        key_order(&self.0, &other.0)
    }
}

impl PartialOrd for KeyOrder {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::AtomicU64;

    use async_trait::async_trait;
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::{Hamt, HamtReader, MemoryStore};

    /// A memory store that counts the blocks read from it.
    #[derive(Debug, Default)]
    struct Counting {
        inner: MemoryStore,
        gets: AtomicU64,
    }

    #[async_trait]
    impl BlockStore for Counting {
        async fn put_keyed(&self, cid: &Cid, data: Bytes) -> Result<()> {
            self.inner.put_keyed(cid, data).await
        }
        async fn get(&self, cid: &Cid) -> Result<Bytes> {
            self.gets.fetch_add(1, Ordering::Relaxed);
            self.inner.get(cid).await
        }
    }

    type Model = BTreeMap<String, String>;

    async fn build_tree(store: &Arc<dyn BlockStore>, model: &Model, bucket: usize) -> Cid {
        let config = Config::new().max_bucket_size(bucket);
        let mut map = Hamt::with_config(store.clone(), config).unwrap();
        // Reverse order: a different insertion order than the edits that made the trees.
        for (k, v) in model.iter().rev() {
            map.insert(k, v.clone().into_bytes()).await.unwrap();
        }
        map.flush().await.unwrap()
    }

    /// `base` edited by `edits` through a tree opened at `root` (inserts and removes, so
    /// splits and folds both happen).
    async fn edit(
        store: &Arc<dyn BlockStore>,
        root: Cid,
        edits: &[(String, Option<String>)],
        bucket: usize,
    ) -> Cid {
        let config = Config::new().max_bucket_size(bucket);
        let mut map = Hamt::open_with_config(store.clone(), root, config)
            .await
            .unwrap();
        for (k, v) in edits {
            match v {
                Some(v) => {
                    map.insert(k, v.clone().into_bytes()).await.unwrap();
                }
                None => {
                    map.remove(k).await.unwrap();
                }
            }
        }
        map.flush().await.unwrap()
    }

    fn apply(model: &Model, edits: &[(String, Option<String>)]) -> Model {
        let mut out = model.clone();
        for (k, v) in edits {
            match v {
                Some(v) => out.insert(k.clone(), v.clone()),
                None => out.remove(k),
            };
        }
        out
    }

    /// The model's three-way merge: the merged map, or the conflicting keys.
    fn model_merge(base: &Model, ours: &Model, theirs: &Model) -> Result<Model, BTreeSet<String>> {
        let keys: BTreeSet<&String> = base
            .keys()
            .chain(ours.keys())
            .chain(theirs.keys())
            .collect();
        let mut merged = Model::new();
        let mut conflicts = BTreeSet::new();
        for key in keys {
            let (b, o, t) = (base.get(key), ours.get(key), theirs.get(key));
            let v = if o == t || b == t {
                o
            } else if b == o {
                t
            } else {
                conflicts.insert(key.clone());
                continue;
            };
            if let Some(v) = v {
                merged.insert(key.clone(), v.clone());
            }
        }
        if conflicts.is_empty() {
            Ok(merged)
        } else {
            Err(conflicts)
        }
    }

    async fn check(
        base: Model,
        ours_edits: Vec<(String, Option<String>)>,
        theirs_edits: Vec<(String, Option<String>)>,
        bucket: usize,
    ) {
        let store: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
        let base_root = build_tree(&store, &base, bucket).await;
        let ours_root = edit(&store, base_root, &ours_edits, bucket).await;
        let theirs_root = edit(&store, base_root, &theirs_edits, bucket).await;
        let (ours, theirs) = (apply(&base, &ours_edits), apply(&base, &theirs_edits));
        let config = Config::new().max_bucket_size(bucket);
        let outcome = merge_with_config(store.clone(), config, base_root, ours_root, theirs_root)
            .await
            .unwrap();
        match model_merge(&base, &ours, &theirs) {
            Ok(expected) => {
                let want = build_tree(&store, &expected, bucket).await;
                assert_eq!(
                    outcome,
                    MergeOutcome::Merged(want),
                    "not the canonical tree"
                );
                let reader = HamtReader::open(store.clone(), want).await.unwrap();
                assert_eq!(reader.len().await.unwrap(), expected.len() as u64);
            }
            Err(keys) => {
                let MergeOutcome::Conflicts(found) = outcome else {
                    panic!("expected conflicts on {keys:?}, got {outcome:?}")
                };
                let found: BTreeSet<String> = found.iter().map(|c| c.key.clone()).collect();
                assert_eq!(found, keys);
            }
        }
    }

    fn edits(keys: u32) -> impl Strategy<Value = Vec<(String, Option<String>)>> {
        prop::collection::vec((0..keys, prop::option::weighted(0.7, 0..4u8)), 0..120).prop_map(
            |v| {
                v.into_iter()
                    .map(|(k, val)| (format!("k{k}"), val.map(|x| format!("v{x}"))))
                    .collect()
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn merges_like_a_map_and_gives_the_canonical_tree(
            base in prop::collection::btree_map((0..400u32).prop_map(|k| format!("k{k}")), (0..4u8).prop_map(|x| format!("v{x}")), 0..300),
            ours in edits(400),
            theirs in edits(400),
            bucket in 1..6usize,
        ) {
            futures::executor::block_on(check(base, ours, theirs, bucket));
        }

        /// Few keys: buckets face subtrees, subtrees fold back into buckets.
        #[test]
        fn merges_small_trees_across_splits_and_folds(
            base in prop::collection::btree_map((0..12u32).prop_map(|k| format!("k{k}")), (0..2u8).prop_map(|x| format!("v{x}")), 0..12),
            ours in edits(12),
            theirs in edits(12),
            bucket in 1..4usize,
        ) {
            futures::executor::block_on(check(base, ours, theirs, bucket));
        }
    }

    #[test]
    fn a_subtree_left_with_a_bucket_of_keys_folds_and_a_full_bucket_splits() {
        futures::executor::block_on(async {
            // Bucket size 1: every pair of keys sharing a first hash byte is a subtree.
            let keys: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
            let first = |k: &str| key_hash(k)[0];
            let (a, b) = keys
                .iter()
                .enumerate()
                .find_map(|(i, x)| {
                    keys[i + 1..]
                        .iter()
                        .find(|y| first(y) == first(x))
                        .map(|y| (x.clone(), y.clone()))
                })
                .unwrap();
            let base: Model = [(a.clone(), "1".to_string()), (b.clone(), "1".to_string())].into();
            // Ours removes one key (the subtree folds to a bucket), theirs changes the other.
            check(
                base.clone(),
                vec![(a.clone(), None)],
                vec![(b.clone(), Some("2".into()))],
                1,
            )
            .await;
            // Both add a key next to a bucket: the merged bucket is too big and splits.
            let base: Model = [(a.clone(), "1".to_string())].into();
            check(
                base,
                vec![(b.clone(), Some("x".into()))],
                vec![("other".into(), Some("y".into()))],
                1,
            )
            .await;
        });
    }

    #[test]
    fn disjoint_changes_touch_only_their_subtrees() {
        futures::executor::block_on(async {
            let counting = Arc::new(Counting::default());
            let store: Arc<dyn BlockStore> = counting.clone();
            let base: Model = (0..20_000)
                .map(|i| (format!("key/{i}"), format!("v{i}")))
                .collect();
            let base_root = build_tree(&store, &base, 4).await;
            let ours_edits = vec![
                ("key/7".to_string(), Some("ours".to_string())),
                ("new/ours".to_string(), Some("x".to_string())),
            ];
            let theirs_edits = vec![
                ("key/1234".to_string(), None),
                ("new/theirs".to_string(), Some("y".to_string())),
            ];
            let ours_root = edit(&store, base_root, &ours_edits, 4).await;
            let theirs_root = edit(&store, base_root, &theirs_edits, 4).await;
            let nodes = HamtReader::open(store.clone(), base_root)
                .await
                .unwrap()
                .stats()
                .await
                .unwrap();
            counting.gets.store(0, Ordering::Relaxed);
            let outcome = merge(store.clone(), base_root, ours_root, theirs_root)
                .await
                .unwrap();
            let reads = counting.gets.load(Ordering::Relaxed);
            // Three roots and three versions of each node on the four changed paths.
            let bound = 3 + 3 * 4 * u64::from(nodes.depth);
            assert!(
                reads <= bound,
                "{reads} blocks read of {} nodes (bound {bound})",
                nodes.nodes
            );
            let expected = apply(&apply(&base, &ours_edits), &theirs_edits);
            let want = build_tree(&store, &expected, 4).await;
            assert_eq!(outcome, MergeOutcome::Merged(want));
        });
    }

    #[test]
    fn conflicts_name_every_key_with_the_three_values() {
        futures::executor::block_on(async {
            let store: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
            let base: Model = (0..500)
                .map(|i| (format!("k{i}"), "0".to_string()))
                .collect();
            let base_root = build_tree(&store, &base, 4).await;
            let ours_root = edit(
                &store,
                base_root,
                &[
                    ("k1".into(), Some("ours".into())),
                    ("k2".into(), None),
                    ("k3".into(), Some("same".into())),
                    ("fresh".into(), Some("a".into())),
                ],
                4,
            )
            .await;
            let theirs_root = edit(
                &store,
                base_root,
                &[
                    ("k1".into(), Some("theirs".into())),
                    ("k2".into(), Some("kept".into())),
                    ("k3".into(), Some("same".into())),
                    ("fresh".into(), Some("b".into())),
                ],
                4,
            )
            .await;
            let outcome = merge(store.clone(), base_root, ours_root, theirs_root)
                .await
                .unwrap();
            let MergeOutcome::Conflicts(conflicts) = outcome else {
                panic!("{outcome:?}")
            };
            let keys: Vec<&str> = conflicts.iter().map(|c| c.key.as_str()).collect();
            assert_eq!(keys, ["k1", "k2", "fresh"]);
            let cid = |s: &str| Some(crate::HashAlg::Blake3.cid(crate::Codec::Raw, s.as_bytes()));
            assert_eq!(conflicts[0].base, cid("0"));
            assert_eq!(conflicts[0].ours, cid("ours"));
            assert_eq!(conflicts[0].theirs, cid("theirs"));
            assert_eq!(conflicts[1].ours, None);
            assert_eq!(conflicts[2].base, None);
            // Two equal sides merge to themselves without a walk.
            assert_eq!(
                outcome_root(&store, base_root, ours_root, ours_root).await,
                Some(ours_root)
            );
        });
    }

    async fn outcome_root(store: &Arc<dyn BlockStore>, b: Cid, o: Cid, t: Cid) -> Option<Cid> {
        merge(store.clone(), b, o, t).await.unwrap().root()
    }

    #[test]
    fn a_missing_node_is_not_found_and_a_bad_config_is_refused() {
        futures::executor::block_on(async {
            let store: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
            let empty = Hamt::new(store.clone()).flush().await.unwrap();
            let absent = crate::HashAlg::Blake3.cid(crate::Codec::DagCbor, b"\x80");
            let one = edit(&store, empty, &[("a".into(), Some("1".into()))], 4).await;
            let err = merge(store.clone(), empty, one, absent).await.unwrap_err();
            assert!(
                matches!(err, Error::NotFound { cid } if cid == absent),
                "{err}"
            );
            let err =
                merge_with_config(store, Config::new().max_bucket_size(0), empty, one, absent)
                    .await
                    .unwrap_err();
            assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
        });
    }
}
