//! Differences between two HAMT roots, skipping subtrees that did not change.

use std::collections::VecDeque;
use std::sync::Arc;

use cid::Cid;
use futures::Stream;

use crate::cache::Loader;
use crate::error::Result;
use crate::link::Link;
use crate::node::{Entry, Node, Slot, key_order};
use crate::store::BlockStore;

/// One key that differs between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key is only in the new tree.
    Added {
        /// The key.
        key: String,
        /// Its value CID in the new tree.
        value: Cid,
    },
    /// The key is only in the old tree.
    Removed {
        /// The key.
        key: String,
        /// Its value CID in the old tree.
        value: Cid,
    },
    /// The key is in both trees with different values.
    Modified {
        /// The key.
        key: String,
        /// Its value CID in the old tree.
        old: Cid,
        /// Its value CID in the new tree.
        new: Cid,
    },
}

impl Change {
    /// The key that changed.
    pub fn key(&self) -> &str {
        match self {
            Change::Added { key, .. }
            | Change::Removed { key, .. }
            | Change::Modified { key, .. } => key,
        }
    }
}

/// Streams the keys added, removed and modified from the tree at `old` to the tree at `new`.
///
/// Both trees are walked together slot by slot; two links with the same CID are the same
/// subtree and are skipped without loading, so the cost follows the size of the change,
/// not of the trees. Trees written with different bucket sizes compare correctly too (a
/// bucket facing a subtree is compared with the subtree's entries).
///
/// The nodes to compare are fetched a batch at a time ([`PAIRS`] pairs of nodes in one
/// [`get_many`](BlockStore::get_many), the subtrees facing a bucket level by level), so over
/// a store where each request costs a round trip the diff costs about one round trip per
/// level of the change, not one per node. Only nodes are read, never values.
pub fn diff(store: Arc<dyn BlockStore>, old: Cid, new: Cid) -> impl Stream<Item = Result<Change>> {
    struct State {
        loader: Loader,
        work: Vec<(Link, Link)>,
        ready: VecDeque<Change>,
    }
    let state = State {
        loader: Loader::new(store, 16 << 20),
        work: if old == new {
            vec![]
        } else {
            vec![(Link::from_cid(&old), Link::from_cid(&new))]
        },
        ready: VecDeque::new(),
    };
    futures::stream::try_unfold(state, |mut st| async move {
        loop {
            if let Some(change) = st.ready.pop_front() {
                return Ok(Some((change, st)));
            }
            if st.work.is_empty() {
                return Ok(None);
            }
            let pairs = st.work.split_off(st.work.len().saturating_sub(PAIRS));
            let links: Vec<Link> = pairs
                .iter()
                .flat_map(|(a, b)| [a.clone(), b.clone()])
                .collect();
            let nodes = st.loader.load_many(&links).await?;
            // Slots where a side is not a link to compare with a link: the entries of both
            // sides, some still behind links to subtrees.
            let mut sides: Vec<(Side, Side)> = Vec::new();
            for pair in nodes.chunks_exact(2) {
                let (a, b) = (&pair[0], &pair[1]);
                for index in (0..=255u8).rev() {
                    match (a.get(index), b.get(index)) {
                        (None, None) => {}
                        (Some(Slot::Link(x)), Some(Slot::Link(y))) => {
                            if x != y {
                                st.work.push((x, y));
                            }
                        }
                        (x, y) => sides.push((Side::of(x), Side::of(y))),
                    }
                }
            }
            let subtrees: Vec<Link> = sides
                .iter()
                .flat_map(|(a, b)| [a.link(), b.link()])
                .flatten()
                .collect();
            let mut under = subtree_entries(&subtrees, &st.loader).await?.into_iter();
            for (a, b) in sides {
                let old = a.entries(&mut under);
                let new = b.entries(&mut under);
                compare(old, new, &mut st.ready);
            }
        }
    })
}

/// Node pairs compared in one batch of fetches.
const PAIRS: usize = 256;

/// One side of a slot that is compared entry by entry.
enum Side {
    /// The entries at hand: a bucket's, or none.
    Entries(Vec<Entry>),
    /// A subtree, whose entries are fetched.
    Subtree(Link),
}

impl Side {
    fn of(slot: Option<Slot<'_>>) -> Self {
        match slot {
            None => Side::Entries(Vec::new()),
            Some(Slot::Bucket(b)) => Side::Entries(b.entries().collect()),
            Some(Slot::Link(link)) => Side::Subtree(link),
            Some(Slot::Dirty(_)) => unreachable!("stored nodes never hold dirty children"),
        }
    }

    fn link(&self) -> Option<Link> {
        match self {
            Side::Subtree(link) => Some(link.clone()),
            Side::Entries(_) => None,
        }
    }

    /// The side's entries in key order; a subtree's are the next of `under`.
    fn entries(self, under: &mut impl Iterator<Item = Vec<Entry>>) -> Vec<Entry> {
        let mut entries = match self {
            Side::Entries(entries) => entries,
            Side::Subtree(_) => under.next().unwrap_or_default(),
        };
        entries.sort_by(|a, b| key_order(&a.key, &b.key));
        entries
    }
}

/// Every entry under each of `roots`, in their order: the subtrees are read together,
/// level by level, each level's nodes in one batch.
async fn subtree_entries(roots: &[Link], loader: &Loader) -> Result<Vec<Vec<Entry>>> {
    let mut out: Vec<Vec<Entry>> = vec![Vec::new(); roots.len()];
    // Each node still to read, with the subtree it belongs to.
    let mut level: Vec<(usize, Link)> = roots.iter().cloned().enumerate().collect();
    while !level.is_empty() {
        let links: Vec<Link> = level.iter().map(|(_, l)| l.clone()).collect();
        let nodes = loader.load_many(&links).await?;
        let mut next = Vec::new();
        for ((owner, _), node) in level.into_iter().zip(nodes) {
            let node: Arc<Node> = node;
            for slot in node.slots() {
                match slot {
                    Slot::Bucket(b) => out[owner].extend(b.entries()),
                    Slot::Link(link) => next.push((owner, link)),
                    Slot::Dirty(_) => unreachable!("stored nodes never hold dirty children"),
                }
            }
        }
        level = next;
    }
    Ok(out)
}

/// Merges two sorted entry lists into changes.
fn compare(old: Vec<Entry>, new: Vec<Entry>, out: &mut VecDeque<Change>) {
    let mut old = old.into_iter().peekable();
    let mut new = new.into_iter().peekable();
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => return,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(o), Some(n)) => key_order(&o.key, &n.key),
        };
        match order {
            std::cmp::Ordering::Less => {
                if let Some(o) = old.next() {
                    out.push_back(Change::Removed {
                        key: o.key.into_string(),
                        value: o.value.to_cid(),
                    });
                }
            }
            std::cmp::Ordering::Greater => {
                if let Some(n) = new.next() {
                    out.push_back(Change::Added {
                        key: n.key.into_string(),
                        value: n.value.to_cid(),
                    });
                }
            }
            std::cmp::Ordering::Equal => {
                if let (Some(o), Some(n)) = (old.next(), new.next())
                    && o.value != n.value
                {
                    out.push_back(Change::Modified {
                        key: o.key.into_string(),
                        old: o.value.to_cid(),
                        new: n.value.to_cid(),
                    });
                }
            }
        }
    }
}
