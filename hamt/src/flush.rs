//! The flush: every changed node of a tree encoded, hashed, stored and sealed, behind one
//! function, [`write()`].
//!
//! The root's changed subtrees go a window of [`FLUSH_WINDOW`] at a time: encoded and hashed
//! (on all cores for a large flush), stored with one [`put_blocks`](BlockStore::put_blocks),
//! then sealed while the next window is encoded. Sealing re-points each node at its block
//! and moves the subtree's inner nodes into the node cache, so memory holds the tree or its
//! blocks, not both.
//!
//! # Blocking the calling thread
//!
//! A large flush encodes on [`std::thread::scope`]d threads inside an `async fn`, so the
//! executor thread that polls the flush waits for them. That is deliberate:
//!
//! - The threads only read the subtrees being encoded and hash them; they touch neither the
//!   store nor any lock a task could hold, and never wait on the executor, so a flush cannot
//!   deadlock on any executor, a single-threaded one included (tests run a parallel flush
//!   under tokio's current-thread runtime, a one-worker multi-thread runtime and
//!   `futures::executor::block_on`, and check that every store call stays on the thread
//!   that polls the flush).
//! - The executor thread is held for less time than encoding on it alone would take, which
//!   is what every flush below [`PARALLEL_FLUSH_CHANGES`] does, as any CPU-bound step of an
//!   `async fn` does: the thread seals the previous window while the others encode, and
//!   each hold lasts one window, between the store's awaits.
//! - The alternatives cost the guarantees a flush gives. `spawn_blocking` and
//!   `block_in_place` belong to one runtime, which this crate does not depend on. Any
//!   thread that is not scoped needs `'static` data: copies of the subtrees (memory and time
//!   of the same order as the encoding), or the subtrees taken out of the tree across an
//!   await, which a dropped flush would lose (today a flush dropped at any await leaves the
//!   tree whole, to be flushed again).

use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;

use crate::block::{Block, Codec, HashAlg};
use crate::cache::{Loader, NodeCache};
use crate::error::Result;
use crate::link::Link;
use crate::node::Node;
#[cfg(doc)]
use crate::store::BlockStore;

/// Writes every changed node under `root` to the loader's store, `root` last, and returns
/// the root's CID. `changes` (inserts and removes since the last flush) decides whether the
/// encoding is worth more threads.
///
/// Every node is sealed once the store has its block: the root is re-pointed at its block,
/// the nodes below it are moved into the node cache. A subtree is only sealed after the
/// store took its blocks, so a failed flush, or one dropped while it waits for the store,
/// leaves every node it did not store dirty and the tree whole, to be flushed again.
///
/// # Errors
/// Store failures.
pub(crate) async fn write(root: &mut Node, loader: &Loader, changes: usize) -> Result<Cid> {
    let hash_alg = loader.store.hash_alg();
    let store = loader.store.clone();
    let parallel = changes >= PARALLEL_FLUSH_CHANGES;
    // The root's changed subtrees are encoded a window at a time, on all cores, stored,
    // and then sealed: their nodes move into the cache sharing their blocks' bytes, so
    // memory holds the tree or its blocks, not both. A window is sealed on this thread
    // while the next one is encoded on the others. A failed store leaves the windows
    // before it sealed and stored, and the rest dirty for a retry; so does a flush
    // dropped while it waits for the store, as nothing is taken out of the tree across an
    // await. A subtree's own root is sealed where it stands (the cache gets a copy), so
    // even a panic while sealing leaves it a valid node.
    let dirty = root.dirty_indices();
    let windows: Vec<&[u8]> = dirty.chunks(FLUSH_WINDOW).collect();
    // The window last stored, with its blocks, to be sealed.
    let mut stored: Option<(&[u8], Vec<SubtreeBlocks>)> = None;
    for next in 0..=windows.len() {
        let encode = windows.get(next).copied().unwrap_or_default();
        let (sealing, blocks) = stored.take().unwrap_or_default();
        let (sealed, encoded) = {
            let mut to_seal = Vec::new();
            let mut to_encode = Vec::new();
            for (index, child) in root.dirty_children_mut() {
                if sealing.contains(&index) {
                    to_seal.push(child);
                } else if encode.contains(&index) {
                    to_encode.push(&*child);
                }
            }
            let cache = &loader.cache;
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
            root.seal_child(index, |_| link);
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
    let bytes = root.encode_with(|_| unreachable!("every child of the root is sealed"));
    let root_block = Block::new(hash_alg, Codec::DagCbor, Bytes::from(bytes));
    let cid = *root_block.cid();
    let root_bytes = root_block.data().clone();
    store.put_blocks(vec![root_block]).await?;
    root.rebase(root_bytes);
    Ok(cid)
}

/// A flushed subtree's blocks as links and bytes, in the order [`seal_nodes`] takes them.
type SubtreeBlocks = Vec<(Link, Bytes)>;

/// How many of the root's changed subtrees a flush encodes before storing them.
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
