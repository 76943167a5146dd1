//! HAMT nodes in py-hamt 3's layout, and their DAG-CBOR encoding.
//!
//! A node is a DAG-CBOR list of exactly 256 slots. A slot is one of
//! - an empty map: nothing here,
//! - a map `{key: value-CID}` of at most `max_bucket_size` entries: a bucket,
//! - a one-element list `[CID]`: a link to a child node one level deeper.
//!
//! In memory only occupied slots are kept (a 256-bit bitmap plus a dense vector), and a
//! child that was changed since the last flush is held inline as [`Slot::Dirty`].
//!
//! Encoding and decoding are written by hand for this fixed shape: it is the hot path of
//! every HAMT operation, and the output is checked against `serde_ipld_dagcbor` in tests.

use cid::Cid;

use crate::bucket::Bucket;
pub(crate) use crate::bucket::key_order;
use crate::error::{Error, Result};
use crate::link::Link;

/// Number of slots in a node (8 bits of the key hash per level).
pub(crate) const WIDTH: usize = 256;

/// Bytes in a key hash; the tree is at most this deep.
pub(crate) const HASH_LEN: usize = 32;

/// The BLAKE3-256 hash of a key, as py-hamt's `blake3_hashfn` computes it.
pub(crate) fn key_hash(key: &str) -> [u8; HASH_LEN] {
    *blake3::hash(key.as_bytes()).as_bytes()
}

/// One key of a bucket and the CID of its value block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: Box<str>,
    pub(crate) value: Link,
}

/// An occupied slot.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    /// Entries in DAG-CBOR key order; never empty.
    Bucket(Bucket),
    /// A child node as stored.
    Link(Link),
    /// A child node changed since the last flush.
    Dirty(Box<Node>),
}

/// A HAMT node.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    bitmap: [u64; 4],
    slots: Vec<Slot>,
}

impl Node {
    fn rank(&self, index: u8) -> usize {
        let word = usize::from(index / 64);
        let bit = index % 64;
        let below: u32 = self.bitmap[..word].iter().map(|w| w.count_ones()).sum();
        let mask = (1u64 << bit) - 1;
        (below + (self.bitmap[word] & mask).count_ones()) as usize
    }

    fn is_set(&self, index: u8) -> bool {
        self.bitmap[usize::from(index / 64)] & (1 << (index % 64)) != 0
    }

    /// The slot at `index`, if occupied.
    pub(crate) fn get(&self, index: u8) -> Option<&Slot> {
        self.is_set(index).then(|| &self.slots[self.rank(index)])
    }

    /// The slot at `index`, mutably, if occupied.
    pub(crate) fn get_mut(&mut self, index: u8) -> Option<&mut Slot> {
        if self.is_set(index) {
            let rank = self.rank(index);
            Some(&mut self.slots[rank])
        } else {
            None
        }
    }

    /// Puts `slot` at `index`, replacing what was there.
    pub(crate) fn set(&mut self, index: u8, slot: Slot) {
        let rank = self.rank(index);
        if self.is_set(index) {
            self.slots[rank] = slot;
        } else {
            self.bitmap[usize::from(index / 64)] |= 1 << (index % 64);
            self.slots.insert(rank, slot);
        }
    }

    /// Empties the slot at `index`, returning what was there.
    pub(crate) fn clear(&mut self, index: u8) -> Option<Slot> {
        if !self.is_set(index) {
            return None;
        }
        let rank = self.rank(index);
        self.bitmap[usize::from(index / 64)] &= !(1 << (index % 64));
        Some(self.slots.remove(rank))
    }

    /// The occupied slots in index order.
    pub(crate) fn slots(&self) -> impl DoubleEndedIterator<Item = &Slot> {
        self.slots.iter()
    }

    /// The occupied slots with their indices.
    #[cfg(test)]
    pub(crate) fn indexed_slots(&self) -> impl Iterator<Item = (u8, &Slot)> {
        (0..=255u8)
            .filter(|&i| self.is_set(i))
            .zip(self.slots.iter())
    }

    /// The occupied slots, mutably.
    pub(crate) fn slots_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.slots.iter_mut()
    }

    /// True when no slot is occupied.
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// An estimate of the memory this node takes, for the cache budget.
    pub(crate) fn mem_size(&self) -> usize {
        let mut size = std::mem::size_of::<Self>() + self.slots.capacity() * size_of::<Slot>();
        for slot in &self.slots {
            if let Slot::Bucket(bucket) = slot {
                // The allocator's per-allocation overhead included.
                size += bucket.byte_len() + 16;
            }
        }
        size
    }

    /// Encodes the node as DAG-CBOR. `child_cid` gives the CID of each inline (dirty) child;
    /// it is only called for [`Slot::Dirty`] slots.
    pub(crate) fn encode_with(&self, mut child_cid: impl FnMut(&Node) -> Link) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + WIDTH + self.slots.len() * 64);
        out.extend_from_slice(&[0x99, 0x01, 0x00]); // array(256)
        let mut slots = self.slots.iter();
        for index in 0..=255u8 {
            if !self.is_set(index) {
                out.push(0xa0); // {}
                continue;
            }
            let Some(slot) = slots.next() else { break };
            match slot {
                Slot::Bucket(bucket) => {
                    write_header(&mut out, 5, bucket.len() as u64);
                    for entry in bucket.iter() {
                        write_header(&mut out, 3, entry.key.len() as u64);
                        out.extend_from_slice(entry.key.as_bytes());
                        write_cid_bytes(&mut out, entry.cid);
                    }
                }
                Slot::Link(link) => {
                    out.push(0x81);
                    write_link(&mut out, link);
                }
                Slot::Dirty(child) => {
                    out.push(0x81);
                    write_link(&mut out, &child_cid(child));
                }
            }
        }
        out
    }

    /// Encodes a node that has no dirty children.
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        self.encode_with(|_| unreachable!("encode() is only called on clean nodes"))
    }

    /// Decodes a node from DAG-CBOR. `cid` names the block in errors.
    pub(crate) fn decode(data: &[u8], cid: Option<Cid>) -> Result<Node> {
        let err = |reason: &str| Error::decode("HAMT node", cid, reason);
        let mut r = Reader { data, pos: 0 };
        let (major, len) = r.header().map_err(err)?;
        if major != 4 || len != WIDTH as u64 {
            return Err(err("not a list of 256 slots"));
        }
        let mut node = Node::default();
        for index in 0..=255u8 {
            let (major, len) = r.header().map_err(err)?;
            match major {
                5 if len == 0 => {}
                5 => {
                    let count =
                        u8::try_from(len).map_err(|_| err("bucket of more than 255 keys"))?;
                    let mut entries = Vec::with_capacity(usize::from(count));
                    for _ in 0..count {
                        let key = r.text().map_err(err)?;
                        let cid = r.cid_bytes().map_err(err)?;
                        entries.push((key, cid));
                    }
                    let bucket = Bucket::from_decoded(entries)
                        .ok_or_else(|| err("duplicate key in a bucket"))?;
                    node.set(index, Slot::Bucket(bucket));
                }
                4 if len == 1 => {
                    let link = r.link().map_err(err)?;
                    node.set(index, Slot::Link(link));
                }
                _ => return Err(err("a slot is neither a bucket nor a link")),
            }
        }
        if r.remaining() != 0 {
            return Err(err("trailing bytes after the node"));
        }
        Ok(node)
    }
}

fn write_header(out: &mut Vec<u8>, major: u8, len: u64) {
    let m = major << 5;
    // Each arm's bound makes its cast lossless.
    #[allow(clippy::cast_possible_truncation)]
    match len {
        0..=23 => out.push(m | len as u8),
        24..=0xff => out.extend_from_slice(&[m | 0x18, len as u8]),
        0x100..=0xffff => {
            out.push(m | 0x19);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 0x1a);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 0x1b);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
}

fn write_cid_bytes(out: &mut Vec<u8>, cid: &[u8]) {
    out.extend_from_slice(&[0xd8, 0x2a]); // tag 42
    write_header(out, 2, cid.len() as u64 + 1);
    out.push(0x00); // multibase identity prefix
    out.extend_from_slice(cid);
}

fn write_link(out: &mut Vec<u8>, link: &Link) {
    out.extend_from_slice(&[0xd8, 0x2a]); // tag 42
    write_header(out, 2, link.encoded_len() as u64 + 1);
    out.push(0x00); // multibase identity prefix
    link.write_bytes(out);
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if n > self.remaining() {
            return Err("truncated");
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn header(&mut self) -> Result<(u8, u64), &'static str> {
        let first = self.byte()?;
        let major = first >> 5;
        let info = first & 0x1f;
        let len = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes(
                self.take(2)?.try_into().map_err(|_| "truncated")?,
            )),
            26 => u64::from(u32::from_be_bytes(
                self.take(4)?.try_into().map_err(|_| "truncated")?,
            )),
            27 => u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| "truncated")?),
            _ => return Err("indefinite lengths are not DAG-CBOR"),
        };
        Ok((major, len))
    }

    fn len(&mut self, expect_major: u8, what: &'static str) -> Result<usize, &'static str> {
        let (major, len) = self.header()?;
        if major != expect_major {
            return Err(what);
        }
        usize::try_from(len).map_err(|_| "truncated")
    }

    fn text(&mut self) -> Result<&'a str, &'static str> {
        let len = self.len(3, "bucket key is not a string")?;
        std::str::from_utf8(self.take(len)?).map_err(|_| "bucket key is not UTF-8")
    }

    /// The binary form of a CID, checked to parse.
    fn cid_bytes(&mut self) -> Result<&'a [u8], &'static str> {
        if self.take(2)? != [0xd8, 0x2a] {
            return Err("expected a CID (tag 42)");
        }
        let len = self.len(2, "CID is not a byte string")?;
        let bytes = self.take(len)?;
        match bytes.split_first() {
            Some((0, cid)) => {
                Link::from_bytes(cid).map_err(|_| "invalid CID")?;
                Ok(cid)
            }
            _ => Err("CID lacks the identity multibase prefix"),
        }
    }

    fn link(&mut self) -> Result<Link, &'static str> {
        if self.take(2)? != [0xd8, 0x2a] {
            return Err("expected a CID (tag 42)");
        }
        let len = self.len(2, "CID is not a byte string")?;
        let bytes = self.take(len)?;
        match bytes.split_first() {
            Some((0, cid)) => Link::from_bytes(cid).map_err(|_| "invalid CID"),
            _ => Err("CID lacks the identity multibase prefix"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ipld_core::ipld::Ipld;

    use super::*;
    use crate::block::{Codec, HashAlg};

    fn cid(n: u8) -> Link {
        Link::from_cid(&HashAlg::Blake3.cid(Codec::Raw, &[n]))
    }

    /// The node as an IPLD value, built the way py-hamt builds it.
    fn as_ipld(node: &Node) -> Ipld {
        let mut list = vec![Ipld::Map(BTreeMap::new()); WIDTH];
        for (i, slot) in node.indexed_slots() {
            list[usize::from(i)] = match slot {
                Slot::Bucket(bucket) => Ipld::Map(
                    bucket
                        .entries()
                        .map(|e| (e.key.to_string(), Ipld::Link(e.value.to_cid())))
                        .collect(),
                ),
                Slot::Link(c) => Ipld::List(vec![Ipld::Link(c.to_cid())]),
                Slot::Dirty(_) => unreachable!(),
            };
        }
        Ipld::List(list)
    }

    fn sample() -> Node {
        let mut node = Node::default();
        let mut keys = [
            "b",
            "aa",
            "a",
            "a-much-longer-key-than-the-others-123456789",
        ];
        keys.sort_by(|a, b| key_order(a, b));
        node.set(
            3,
            Slot::Bucket(Bucket::from_entries(
                keys.iter()
                    .enumerate()
                    .map(|(i, k)| Entry {
                        key: (*k).into(),
                        value: cid(u8::try_from(i).unwrap()),
                    })
                    .collect(),
            )),
        );
        node.set(0, Slot::Link(cid(9)));
        node.set(255, Slot::Link(cid(10)));
        node.set(128, Slot::Bucket(Bucket::single("é", &cid(11))));
        node
    }

    #[test]
    fn encoding_matches_serde_ipld_dagcbor() {
        let node = sample();
        let ours = node.encode();
        let theirs = serde_ipld_dagcbor::to_vec(&as_ipld(&node)).unwrap();
        assert_eq!(ours, theirs);
        let empty = Node::default().encode();
        assert_eq!(
            empty,
            serde_ipld_dagcbor::to_vec(&as_ipld(&Node::default())).unwrap()
        );
    }

    #[test]
    fn decode_round_trips() {
        let node = sample();
        let bytes = node.encode();
        let back = Node::decode(&bytes, None).unwrap();
        assert_eq!(back.encode(), bytes);
        assert!(back.get(1).is_none());
        assert!(matches!(back.get(0), Some(Slot::Link(_))));
    }

    #[test]
    fn bad_nodes_are_decode_errors() {
        let good = sample().encode();
        for cut in [0, 1, 3, 10, good.len() - 1] {
            assert!(matches!(
                Node::decode(&good[..cut], None),
                Err(Error::Decode { .. })
            ));
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(Node::decode(&trailing, None).is_err());
        // A list of 255 slots, a map, an integer.
        assert!(Node::decode(&[0x98, 0xff], None).is_err());
        assert!(Node::decode(&[0xa0], None).is_err());
        assert!(Node::decode(&[0x01], None).is_err());
        // A huge claimed bucket length must not allocate.
        let mut huge = vec![0x99, 0x01, 0x00, 0xbb];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(Node::decode(&huge, None).is_err());
    }

    #[test]
    fn slot_bitmap_operations() {
        let mut node = Node::default();
        for i in [200u8, 3, 64, 63, 0, 255] {
            node.set(i, Slot::Link(cid(i)));
        }
        let idx: Vec<u8> = node.indexed_slots().map(|(i, _)| i).collect();
        assert_eq!(idx, vec![0, 3, 63, 64, 200, 255]);
        assert!(node.clear(64).is_some());
        assert!(node.clear(64).is_none());
        assert!(matches!(node.get(200), Some(Slot::Link(c)) if *c == cid(200)));
    }
}
