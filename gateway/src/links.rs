//! The links of a block in the order they are encoded: what a depth-first CAR follows.
//!
//! [`hamt::dag::links`] gives them in written order (a HAMT bucket's map in its length-first
//! key order), looking inside identity CIDs in their place; this only turns its error into
//! the reason a CAR stream logs when it stops.

use hamt::Cid;

/// The CIDs `data` (the block of `cid`) links to, in encoded order, identity CIDs replaced
/// by what they link to.
///
/// # Errors
/// A reason when the block does not parse as its codec says.
pub(crate) fn links(cid: &Cid, data: &[u8]) -> Result<Vec<Cid>, String> {
    hamt::dag::links(cid, data).map_err(|e| e.to_string())
}
