//! DAGs of blocks: the links of a block, whatever its codec, and a walk of every block
//! reachable from some roots. CAR export, completeness checks and publishing all walk
//! through [`Walk`].

use std::collections::HashSet;

use bytes::Bytes;
use cid::Cid;

use crate::block::Codec;
use crate::codec::cbor;
use crate::error::{Error, Result};
use crate::store::{BlockStore, BlockStream};

/// The CIDs a block links to, in the order the block writes them: every link of a
/// DAG-CBOR block (maps in their encoded order, which for DAG-CBOR is keys by length, then
/// bytewise), the `Links` of a DAG-PB block, none for raw blocks.
///
/// Identity CIDs are not returned — they hold their data, and there is no block to fetch or
/// copy — but what they link to is, in their place: the order a depth-first walk that looks
/// inside identity CIDs meets blocks, as a trustless gateway's `order=dfs` CAR sends them.
///
/// # Errors
/// [`Error::Decode`] for a block that does not parse as its codec says (DAG-CBOR: a
/// truncated item, bytes after it, a tag other than 42, nesting past
/// [`MAX_DEPTH`](crate::codec::cbor::MAX_DEPTH)); [`Error::UnsupportedCodec`].
pub fn links(cid: &Cid, data: &[u8]) -> Result<Vec<Cid>> {
    let mut out = Vec::new();
    links_into(cid, data, 0, &mut out)?;
    Ok(out)
}

/// Identity CIDs nested in identity CIDs beyond this are refused (each holds at most 64
/// bytes, so real data never comes near).
const MAX_IDENTITY_DEPTH: usize = 8;

fn links_into(cid: &Cid, data: &[u8], depth: usize, out: &mut Vec<Cid>) -> Result<()> {
    let start = out.len();
    match Codec::of(cid)? {
        Codec::Raw => return Ok(()),
        Codec::DagCbor => {
            let mut r = cbor::Reader::new(data);
            cbor_links(&mut r, 0, out)
                .map_err(|e| Error::decode("DAG-CBOR block", Some(*cid), e))?;
            if r.remaining() != 0 {
                return Err(Error::decode(
                    "DAG-CBOR block",
                    Some(*cid),
                    "bytes after the item",
                ));
            }
        }
        Codec::DagPb => out.extend(
            crate::unixfs::PbNode::parse(data)
                .map_err(|e| Error::decode("DAG-PB block", Some(*cid), e))?
                .links,
        ),
    }
    if out[start..]
        .iter()
        .all(|c| crate::block::inline_data(c).is_none())
    {
        return Ok(());
    }
    // Splice what each identity CID links to in its place.
    if depth >= MAX_IDENTITY_DEPTH {
        return Err(Error::decode(
            "block",
            Some(*cid),
            "identity CIDs nested too deeply",
        ));
    }
    let found = out.split_off(start);
    for link in found {
        match crate::block::inline_data(&link) {
            None => out.push(link),
            Some(inner) => links_into(&link, inner, depth + 1, out)?,
        }
    }
    Ok(())
}

/// The CIDs of one DAG-CBOR item, in encoded order.
fn cbor_links(
    r: &mut cbor::Reader<'_>,
    depth: usize,
    out: &mut Vec<Cid>,
) -> std::result::Result<(), &'static str> {
    if depth > cbor::MAX_DEPTH {
        return Err("nested too deeply");
    }
    let head = r.head()?;
    match head.major {
        cbor::BYTES | cbor::TEXT => {
            let len = usize::try_from(head.arg).map_err(|_| "truncated")?;
            r.take(len).map(drop)
        }
        cbor::ARRAY | cbor::MAP => {
            let items = if head.major == cbor::MAP {
                head.arg.saturating_mul(2)
            } else {
                head.arg
            };
            // Every item takes a byte at least: a count past the input fails as the bytes
            // run out.
            for _ in 0..items {
                cbor_links(r, depth + 1, out)?;
            }
            Ok(())
        }
        cbor::TAG if head.arg == cbor::CID_TAG => {
            let (len, _) = r.length(cbor::BYTES, "CID is not a byte string")?;
            match r.take(len)?.split_first() {
                Some((0, bytes)) => {
                    out.push(Cid::try_from(bytes).map_err(|_| "invalid CID")?);
                    Ok(())
                }
                _ => Err("CID lacks the identity multibase prefix"),
            }
        }
        cbor::TAG => Err("tags other than 42 are not DAG-CBOR"),
        // Integers, simple values and floats are their head.
        _ => Ok(()),
    }
}

/// How many blocks one step of a [`Walk`] fetches at once.
const BATCH: usize = 1024;

/// Most bytes of blocks one step of a [`Walk`] over a subtree stream hands out at once.
const BATCH_BYTES: usize = 16 << 20;

/// Every block reachable from some roots, each once.
///
/// Over a store that fetches whole subtrees ([`SubtreeFetch`](crate::SubtreeFetch)), each root's DAG comes as one
/// stream, depth first, handed out in batches as it arrives; otherwise the walk goes level
/// by level (breadth first), [`BATCH`] blocks at a time with
/// [`get_many`](BlockStore::get_many).
///
/// Memory is the CIDs of one level and of every block seen, and one batch of blocks: each
/// batch is handed out as it arrives.
pub struct Walk<'a> {
    store: &'a dyn BlockStore,
    seen: HashSet<Cid>,
    level: Vec<Cid>,
    next: Vec<Cid>,
    at: usize,
    /// Roots still to stream, the next last (subtree mode).
    stream_roots: Vec<Cid>,
    /// The stream of the root being walked, and that root.
    streaming: Option<(Cid, BlockStream<'a>, bool)>,
}

impl std::fmt::Debug for Walk<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Walk")
            .field("seen", &self.seen.len())
            .field("level", &self.level.len())
            .field("stream_roots", &self.stream_roots.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Walk<'a> {
    /// A walk from `roots` (identity CIDs among them are skipped: they hold their data).
    pub fn new(store: &'a dyn BlockStore, roots: impl IntoIterator<Item = Cid>) -> Self {
        let mut seen = HashSet::new();
        let roots: Vec<Cid> = roots
            .into_iter()
            .filter(|c| crate::block::inline_data(c).is_none() && seen.insert(*c))
            .collect();
        let (level, stream_roots) = if store.subtree_fetch().is_some() {
            // Blocks count as seen once handed out, roots included.
            seen.clear();
            (Vec::new(), roots.into_iter().rev().collect())
        } else {
            (roots, Vec::new())
        };
        Self {
            store,
            seen,
            level,
            next: Vec::new(),
            at: 0,
            stream_roots,
            streaming: None,
        }
    }

    /// The next batch of blocks, or `None` when every reachable block was handed out.
    ///
    /// # Errors
    /// Store failures ([`Error::NotFound`] names the first missing block of the batch);
    /// [`Error::Decode`] for a block whose links cannot be read.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<(Cid, Bytes)>>> {
        if let Some(batch) = self.next_streamed().await? {
            return Ok(Some(batch));
        }
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

    /// The next batch from the roots' subtree streams, `None` once they are done. A store
    /// that turns out not to serve a root's subtree leaves that root to the level walk.
    async fn next_streamed(&mut self) -> Result<Option<Vec<(Cid, Bytes)>>> {
        use futures::StreamExt as _;
        let mut out = Vec::new();
        let mut bytes = 0;
        loop {
            if self.streaming.is_none() {
                let Some(root) = self.stream_roots.pop() else {
                    break;
                };
                if self.seen.contains(&root) {
                    // Handed out already, with its DAG, under an earlier root.
                    continue;
                }
                let Some(fetch) = self.store.subtree_fetch() else {
                    break;
                };
                self.streaming = Some((root, fetch.subtree(root, false), true));
            }
            let Some((root, stream, first)) = &mut self.streaming else {
                unreachable!("a stream was just set")
            };
            match stream.next().await {
                None => self.streaming = None,
                Some(Err(Error::NotSupported { .. })) if *first => {
                    let root = *root;
                    self.streaming = None;
                    if self.seen.insert(root) {
                        self.level.push(root);
                    }
                }
                Some(Err(e)) => return Err(e),
                Some(Ok(block)) => {
                    *first = false;
                    let (cid, data) = block.into_parts();
                    if self.seen.insert(cid) {
                        bytes += data.len();
                        out.push((cid, data));
                        if out.len() >= BATCH || bytes >= BATCH_BYTES {
                            break;
                        }
                    }
                }
            }
        }
        Ok((!out.is_empty()).then_some(out))
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
    fn links_come_in_written_order_with_identity_cids_opened_in_place() {
        use crate::HashAlg;
        use crate::block::identity_cid;
        use crate::codec::cbor;
        let [a, b, c, d] = [b"a", b"b", b"c", b"d"].map(|x| HashAlg::Blake3.cid(Codec::Raw, x));
        // An identity CID holding a list that links to `d`, and one holding raw bytes.
        let mut inner = Vec::new();
        cbor::write_head(&mut inner, cbor::ARRAY, 1);
        cbor::write_cid(&mut inner, &d.to_bytes());
        let inline = identity_cid(Codec::DagCbor, &inner).unwrap();
        let raw_inline = identity_cid(Codec::Raw, b"xyz").unwrap();
        // [{"z": a, "aa": b}, [inline, c, raw_inline]]: the map in DAG-CBOR's length-first
        // key order, which a data-model walk (sorted by key) would give as b, a.
        let mut block = Vec::new();
        cbor::write_head(&mut block, cbor::ARRAY, 2);
        cbor::write_head(&mut block, cbor::MAP, 2);
        cbor::write_head(&mut block, cbor::TEXT, 1);
        block.push(b'z');
        cbor::write_cid(&mut block, &a.to_bytes());
        cbor::write_head(&mut block, cbor::TEXT, 2);
        block.extend_from_slice(b"aa");
        cbor::write_cid(&mut block, &b.to_bytes());
        cbor::write_head(&mut block, cbor::ARRAY, 3);
        cbor::write_cid(&mut block, &inline.to_bytes());
        cbor::write_cid(&mut block, &c.to_bytes());
        cbor::write_cid(&mut block, &raw_inline.to_bytes());
        let cid = HashAlg::Blake3.cid(Codec::DagCbor, &block);
        assert_eq!(links(&cid, &block).unwrap(), vec![a, b, d, c]);

        // Truncated, trailing bytes, another tag: decode errors, not panics.
        assert!(matches!(
            links(&cid, &block[..block.len() - 1]),
            Err(Error::Decode { .. })
        ));
        let mut trailing = block.clone();
        trailing.push(0);
        assert!(matches!(links(&cid, &trailing), Err(Error::Decode { .. })));
        let mut tagged = Vec::new();
        cbor::write_head(&mut tagged, cbor::TAG, 1);
        cbor::write_head(&mut tagged, cbor::UNSIGNED, 0);
        assert!(matches!(links(&cid, &tagged), Err(Error::Decode { .. })));
        // A count far past the input fails as the bytes run out.
        let mut huge = Vec::new();
        cbor::write_head(&mut huge, cbor::ARRAY, u64::MAX);
        assert!(matches!(links(&cid, &huge), Err(Error::Decode { .. })));
        // Identity CIDs nested in each other, as deep as 64 bytes allow, are opened all
        // the way down (to none here: the innermost holds raw bytes).
        let mut nested = raw_inline;
        let mut levels = 0;
        loop {
            let mut list = Vec::new();
            cbor::write_head(&mut list, cbor::ARRAY, 1);
            cbor::write_cid(&mut list, &nested.to_bytes());
            let Some(next) = identity_cid(Codec::DagCbor, &list) else {
                break;
            };
            nested = next;
            levels += 1;
        }
        assert!(levels >= 4);
        let mut outer = Vec::new();
        cbor::write_head(&mut outer, cbor::ARRAY, 2);
        cbor::write_cid(&mut outer, &nested.to_bytes());
        cbor::write_cid(&mut outer, &a.to_bytes());
        let outer_cid = HashAlg::Blake3.cid(Codec::DagCbor, &outer);
        assert_eq!(links(&outer_cid, &outer).unwrap(), vec![a]);
        let raw = HashAlg::Blake3.cid(Codec::Raw, &block);
        assert!(links(&raw, &block).unwrap().is_empty());
    }

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
