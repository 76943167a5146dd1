//! A node's wire form: DAG-CBOR written and read by hand for this one fixed shape.
//!
//! # Layout
//!
//! ```text
//! 99 01 00                      the list's head: array(256)
//! then 256 slots, in index order:
//!   a0                          {}: an empty slot
//!   bucket bytes                a bucket's canonical encoding, copied as it is kept
//!   81 d8 2a <head> 00 <CID>    [CID]: list(1), tag 42, byte string 0x00 ‖ binary CID
//! ```
//!
//! [`encode_into`](Node::encode_into) writes exactly this. [`encoded_len`](Node::encoded_len)
//! and [`rebase`](Node::rebase) compute it without writing: the length of each part is
//! [`SLOTS_HEAD`], one byte per empty slot, a bucket's length, and [`link_head_len`] plus
//! the CID for a link. The three change together, and tests check each against the others
//! and against `serde_ipld_dagcbor`.

use bytes::Bytes;
use cid::Cid;

use super::cells::{At, Cell, CellRef};
use super::{Buf, Node, Slot, WIDTH, bucket, hint, off, range, set_bits};
use crate::codec::cbor::{self, Reader};
use crate::error::{Error, Result};
use crate::link::Link;

/// The largest node block decoded.
pub(super) const MAX_NODE_BYTES: usize = 256 << 20;

/// The head of the list of slots: `array(256)`.
const SLOTS_HEAD: [u8; 3] = [0x99, 0x01, 0x00];

/// `{}`: an empty slot.
const EMPTY: u8 = 0xa0;

/// The head of `[CID]`, a link slot: `list(1)`.
const LINK_HEAD: u8 = 0x81;

/// The length of the CIDs this crate writes for new nodes (BLAKE3 or SHA2-256 CIDv1), on
/// which [`encoded_len`](Node::encoded_len) counts for a dirty child.
const NEW_CID_LEN: usize = 36;

/// The bytes of a link slot before a binary CID of `len` bytes: its list head, then the
/// CID's own head ([`cbor::cid_head_len`]).
const fn link_head_len(len: usize) -> usize {
    1 + cbor::cid_head_len(len)
}

impl Node {
    /// Points a node without dirty children at `block`, its own encoding, dropping the
    /// owned buffer: the node then shares the block's memory with whoever else holds it.
    ///
    /// The new ranges are computed, not searched for: walking the slots in index order,
    /// `pos` follows [`encode_into`](Self::encode_into)'s output byte for byte (see the
    /// module's layout), so a bucket starts where its bytes were copied to and a link's CID
    /// just after its slot's head.
    pub(crate) fn rebase(&mut self, block: Bytes) {
        let mut pos = SLOTS_HEAD.len();
        let mut next = 0;
        for (rank, index) in set_bits(self.bitmap).enumerate() {
            // The empty slots before this one: `{}`, a byte each.
            pos += usize::from(index) - next;
            next = usize::from(index) + 1;
            let at = At { index, rank };
            match self.cells.get(at) {
                CellRef::Bucket(start, end) => {
                    let len = (end - start) as usize;
                    self.cells.set_range(at, off(pos), off(pos + len));
                    pos += len;
                }
                CellRef::Link(start, end) => {
                    let len = (end - start) as usize;
                    pos += link_head_len(len);
                    self.cells.set_range(at, off(pos), off(pos + len));
                    pos += len;
                }
                CellRef::Dirty(_) => unreachable!("rebase is only called on clean nodes"),
            }
        }
        pos += WIDTH - next;
        debug_assert_eq!(pos, block.len(), "the block is this node's encoding");
        self.buf = Buf::Shared(block);
        self.stale = 0;
        self.cells.shrink();
    }

    /// Encodes the node as DAG-CBOR. `child_cid` gives the CID of each inline (dirty) child;
    /// it is only called for dirty slots.
    pub(crate) fn encode_with(&self, child_cid: impl FnMut(&Node) -> Link) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out, child_cid);
        out
    }

    /// The length of the encoding, exact when dirty children get 36-byte CIDs (BLAKE3 or
    /// SHA2-256 version-1 CIDs, what this crate writes).
    pub(crate) fn encoded_len(&self) -> usize {
        let empty = WIDTH - self.cells.len();
        let cells: usize = self
            .cells
            .iter()
            .map(|c| match c {
                CellRef::Bucket(start, end) => (end - start) as usize,
                CellRef::Link(start, end) => {
                    let len = (end - start) as usize;
                    link_head_len(len) + len
                }
                CellRef::Dirty(_) => link_head_len(NEW_CID_LEN) + NEW_CID_LEN,
            })
            .sum();
        SLOTS_HEAD.len() + empty + cells
    }

    /// Appends the encoding to `out`; see [`encode_with`](Self::encode_with).
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>, mut child_cid: impl FnMut(&Node) -> Link) {
        let data = self.buf.as_slice();
        out.extend_from_slice(&SLOTS_HEAD);
        let mut next = 0;
        for (index, cell) in set_bits(self.bitmap).zip(self.cells.iter()) {
            // The empty slots before this one: `{}`, a byte each.
            out.resize(out.len() + usize::from(index) - next, EMPTY);
            next = usize::from(index) + 1;
            match cell {
                CellRef::Bucket(start, end) => out.extend_from_slice(&data[range(start, end)]),
                CellRef::Link(start, end) => {
                    out.push(LINK_HEAD);
                    cbor::write_cid(out, &data[range(start, end)]);
                }
                CellRef::Dirty(child) => {
                    out.push(LINK_HEAD);
                    child_cid(child).with_bytes(|cid| cbor::write_cid(out, cid));
                }
            }
        }
        out.resize(out.len() + WIDTH - next, EMPTY);
    }

    /// Encodes a node that has no dirty children.
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        self.encode_with(|_| unreachable!("encode() is only called on clean nodes"))
    }

    /// Decodes a node from DAG-CBOR, sharing `data`. `cid` names the block in errors.
    pub(crate) fn decode(data: Bytes, cid: Option<Cid>) -> Result<Node> {
        let err = |reason: &str| Error::decode("HAMT node", cid, reason);
        if data.len() > MAX_NODE_BYTES {
            return Err(err("a node block over 256 MiB"));
        }
        // Nothing has read the block yet: ask for all of it (up to 4 KiB) at once rather
        // than miss line after line.
        let (first, lines) = hint::lines(data.as_ptr().addr(), data.len());
        hint::prefetch(first, lines.min(64));
        let mut r = Reader::new(&data);
        let head = r.head().map_err(err)?;
        if head.major != cbor::ARRAY || head.arg != WIDTH as u64 {
            return Err(err("not a list of 256 slots"));
        }
        let mut node = Node::default();
        let mut fix = Vec::new();
        for index in 0..=255u8 {
            // Most slots of a sparse node are empty maps: one byte.
            if r.eat(EMPTY) {
                continue;
            }
            let start = r.position();
            let head = r.head().map_err(err)?;
            let cell = match (head.major, head.arg) {
                (cbor::MAP, 0) => continue,
                (cbor::MAP, len) => {
                    if !bucket::validate(&mut r, len).map_err(err)? {
                        fix.push(index);
                    }
                    Cell::Bucket(off(start), off(r.position()))
                }
                (cbor::ARRAY, 1) => {
                    let (cid, _) = r.cid().map_err(err)?;
                    Cell::Link(off(r.position() - cid.len()), off(r.position()))
                }
                _ => return Err(err("a slot is neither a bucket nor a link")),
            };
            node.set_bit(index, true);
            node.cells.push(cell);
        }
        if r.remaining() != 0 {
            return Err(err("trailing bytes after the node"));
        }
        node.buf = Buf::Shared(data);
        // Buckets another writer left out of DAG-CBOR order are rewritten in order, so this
        // node encodes canonically once changed.
        for index in fix {
            let Some(Slot::Bucket(b)) = node.get(index) else {
                continue;
            };
            let mut bytes = Vec::new();
            bucket::canonicalize(&mut bytes, b).map_err(err)?;
            let buf = node.owned();
            let start = buf.len();
            buf.extend_from_slice(&bytes);
            let end = buf.len();
            node.set(index, Cell::Bucket(off(start), off(end)));
        }
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Codec, HashAlg};

    /// The constant bytes of the layout are what the general CBOR writer gives.
    #[test]
    fn the_layout_constants_are_cbor() {
        let mut out = Vec::new();
        cbor::write_head(&mut out, cbor::ARRAY, WIDTH as u64);
        assert_eq!(out, SLOTS_HEAD);
        out.clear();
        cbor::write_head(&mut out, cbor::MAP, 0);
        assert_eq!(out, [EMPTY]);
        out.clear();
        cbor::write_head(&mut out, cbor::ARRAY, 1);
        assert_eq!(out, [LINK_HEAD]);
        for alg in [HashAlg::Blake3, HashAlg::Sha2_256] {
            let cid = alg.cid(Codec::DagCbor, b"node").to_bytes();
            assert_eq!(cid.len(), NEW_CID_LEN);
            out.clear();
            out.push(LINK_HEAD);
            cbor::write_cid(&mut out, &cid);
            assert_eq!(out.len(), link_head_len(cid.len()) + cid.len());
        }
    }
}
