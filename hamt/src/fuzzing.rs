//! Entry points for the fuzz targets in the repository's `fuzz/` crate, behind the `fuzzing`
//! feature: the node codec is internal, and these are the narrowest doors to it. Not part of
//! the crate's API; nothing but the fuzz targets and their regression tests calls them.

use bytes::Bytes;
use cid::Cid;

use crate::error::Result;
use crate::node::{Node, Slot};

/// What one occupied slot of a decoded node holds, as a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FuzzSlot {
    /// A bucket: its `(key, value CID)` entries in the order the node keeps them.
    Bucket(Vec<(String, Cid)>),
    /// A link to a child node.
    Link(Cid),
}

/// Decodes `data` as a HAMT node, reads every slot as the HAMT's readers do, and encodes
/// the node again: the occupied slots in index order and the bytes a flush would write.
///
/// # Errors
/// [`Error::Decode`](crate::Error::Decode) for bytes that are not a HAMT node.
pub fn node_round_trip(data: &[u8]) -> Result<(Vec<FuzzSlot>, Vec<u8>)> {
    let node = Node::decode(Bytes::copy_from_slice(data), None)?;
    let slots = node
        .slots()
        .map(|slot| match slot {
            Slot::Bucket(b) => FuzzSlot::Bucket(
                b.entries()
                    .map(|e| (e.key.into(), e.value.to_cid()))
                    .collect(),
            ),
            Slot::Link(link) => FuzzSlot::Link(link.to_cid()),
            Slot::Dirty(_) => unreachable!("a decoded node has no dirty children"),
        })
        .collect();
    let encoded = node.encode_with(|_| unreachable!("a decoded node has no dirty children"));
    Ok((slots, encoded))
}
