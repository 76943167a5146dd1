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
use crate::tree;

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
            let Some((a, b)) = st.work.pop() else {
                return Ok(None);
            };
            let nodes = st.loader.load_many(&[a, b]).await?;
            let (a, b) = (&nodes[0], &nodes[1]);
            for index in (0..=255u8).rev() {
                match (a.get(index), b.get(index)) {
                    (None, None) => {}
                    (Some(Slot::Link(x)), Some(Slot::Link(y))) => {
                        if x != y {
                            st.work.push((x.clone(), y.clone()));
                        }
                    }
                    (x, y) => {
                        let old = slot_entries(x, &st.loader).await?;
                        let new = slot_entries(y, &st.loader).await?;
                        compare(old, new, &mut st.ready);
                    }
                }
            }
        }
    })
}

async fn slot_entries(slot: Option<Slot<'_>>, loader: &Loader) -> Result<Vec<Entry>> {
    let mut entries = match slot {
        None => Vec::new(),
        Some(Slot::Bucket(b)) => b.entries().collect(),
        Some(Slot::Link(cid)) => {
            let node: Arc<Node> = loader.load(&cid).await?;
            tree::collect(&node, usize::MAX, loader)
                .await?
                .unwrap_or_default()
        }
        Some(Slot::Dirty(child)) => tree::collect(child, usize::MAX, loader)
            .await?
            .unwrap_or_default(),
    };
    entries.sort_by(|a, b| key_order(&a.key, &b.key));
    Ok(entries)
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
