//! DAGs of blocks: the links of a block, whatever its codec, and a walk of every block
//! reachable from some roots. CAR export, completeness checks and publishing all walk
//! through [`Walk`].

use std::collections::HashSet;

use bytes::Bytes;
use cid::Cid;

use crate::block::Codec;
use crate::error::{Error, Result};
use crate::store::BlockStore;

/// The CIDs a block links to: every link of a DAG-CBOR block, the `Links` of a DAG-PB
/// block, none for raw blocks. Identity CIDs are left out: they hold their data, and there is
/// no block to fetch or copy.
///
/// # Errors
/// [`Error::Decode`] for a block that does not parse; [`Error::UnsupportedCodec`].
pub fn links(cid: &Cid, data: &[u8]) -> Result<Vec<Cid>> {
    match Codec::of(cid)? {
        Codec::Raw => Ok(Vec::new()),
        Codec::DagCbor => {
            let ipld: ipld_core::ipld::Ipld = serde_ipld_dagcbor::from_slice(data)
                .map_err(|e| Error::decode("DAG-CBOR block", Some(*cid), e))?;
            let mut out = Vec::new();
            let mut stack = vec![&ipld];
            while let Some(node) = stack.pop() {
                match node {
                    ipld_core::ipld::Ipld::Link(c) if crate::block::inline_data(c).is_none() => {
                        out.push(*c);
                    }
                    ipld_core::ipld::Ipld::List(l) => stack.extend(l.iter().rev()),
                    ipld_core::ipld::Ipld::Map(m) => stack.extend(m.values().rev()),
                    _ => {}
                }
            }
            Ok(out)
        }
        Codec::DagPb => Ok(crate::unixfs::PbNode::parse(data)
            .map_err(|e| Error::decode("DAG-PB block", Some(*cid), e))?
            .links),
    }
}

/// How many blocks one step of a [`Walk`] fetches at once.
const BATCH: usize = 1024;

/// Every block reachable from some roots, level by level (breadth first), each once,
/// fetched [`BATCH`] at a time with [`get_many`](BlockStore::get_many).
///
/// Memory is the CIDs of one level and of every block seen, not the blocks: each batch is
/// handed out as it arrives.
pub struct Walk<'a> {
    store: &'a dyn BlockStore,
    seen: HashSet<Cid>,
    level: Vec<Cid>,
    next: Vec<Cid>,
    at: usize,
}

impl std::fmt::Debug for Walk<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Walk")
            .field("seen", &self.seen.len())
            .field("level", &self.level.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Walk<'a> {
    /// A walk from `roots` (identity CIDs among them are skipped: they hold their data).
    pub fn new(store: &'a dyn BlockStore, roots: impl IntoIterator<Item = Cid>) -> Self {
        let mut seen = HashSet::new();
        let level = roots
            .into_iter()
            .filter(|c| crate::block::inline_data(c).is_none() && seen.insert(*c))
            .collect();
        Self {
            store,
            seen,
            level,
            next: Vec::new(),
            at: 0,
        }
    }

    /// The next batch of blocks, or `None` when every reachable block was handed out.
    ///
    /// # Errors
    /// Store failures ([`Error::NotFound`] names the first missing block of the batch);
    /// [`Error::Decode`] for a block whose links cannot be read.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<(Cid, Bytes)>>> {
        if self.at == self.level.len() {
            self.level = std::mem::take(&mut self.next);
            self.at = 0;
            if self.level.is_empty() {
                return Ok(None);
            }
        }
        let end = (self.at + BATCH).min(self.level.len());
        let chunk = &self.level[self.at..end];
        let blocks = self.store.get_many(chunk).await?;
        let mut out = Vec::with_capacity(chunk.len());
        for (cid, data) in chunk.iter().zip(blocks) {
            for link in links(cid, &data)? {
                if self.seen.insert(link) {
                    self.next.push(link);
                }
            }
            out.push((*cid, data));
        }
        self.at = end;
        Ok(Some(out))
    }
}

/// The first block reachable from `roots` that `store` does not hold, if any: whether a
/// DAG is whole, as after a CAR import.
///
/// # Errors
/// Store failures other than a missing block; [`Error::Decode`] for a block whose links
/// cannot be read.
pub async fn first_missing(
    store: &dyn BlockStore,
    roots: impl IntoIterator<Item = Cid>,
) -> Result<Option<Cid>> {
    let mut walk = Walk::new(store, roots);
    loop {
        match walk.next_batch().await {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(None),
            Err(Error::NotFound { cid }) => return Ok(Some(cid)),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{Hamt, MemoryStore};

    #[test]
    fn a_walk_finds_every_block_once_and_a_gap_is_named() {
        futures::executor::block_on(async {
            let memory = MemoryStore::new();
            let store: Arc<dyn BlockStore> = Arc::new(memory.clone());
            let mut map = Hamt::new(store.clone());
            for i in 0..3000 {
                map.insert(&format!("k{i}"), format!("v{}", i % 100).into_bytes())
                    .await
                    .unwrap();
            }
            let root = map.flush().await.unwrap();
            let mut walk = Walk::new(store.as_ref(), [root, root]);
            let mut cids = Vec::new();
            while let Some(batch) = walk.next_batch().await.unwrap() {
                cids.extend(batch.into_iter().map(|(c, _)| c));
            }
            let unique: HashSet<Cid> = cids.iter().copied().collect();
            assert_eq!(unique.len(), cids.len(), "a block handed out twice");
            // Every block of the store is reachable: nodes plus the 100 distinct values.
            assert_eq!(cids.len(), memory.len());
            assert_eq!(cids[0], root);
            assert_eq!(first_missing(store.as_ref(), [root]).await.unwrap(), None);

            // The same map in a store that lacks one value block.
            let partial = MemoryStore::new();
            let gone = *cids.last().unwrap();
            for cid in &cids {
                if *cid != gone {
                    partial.insert_unchecked(*cid, memory.get(cid).await.unwrap());
                }
            }
            let partial: Arc<dyn BlockStore> = Arc::new(partial);
            assert_eq!(
                first_missing(partial.as_ref(), [root]).await.unwrap(),
                Some(gone)
            );
            let absent = crate::HashAlg::Blake3.cid(Codec::DagCbor, b"\xa0");
            assert_eq!(
                first_missing(partial.as_ref(), [absent]).await.unwrap(),
                Some(absent)
            );
        });
    }
}
