//! The links of a block in the order they are encoded: what a depth-first CAR follows.
//!
//! `hamt::dag::links` reads DAG-CBOR through a data model whose maps are sorted by key, so
//! the links of a map (a HAMT bucket) come out in key order rather than in the block's own
//! (length-first) order; a stream that says `order=dfs` must follow the block as written.
//! This walks DAG-CBOR with [`hamt::codec::cbor::Reader`], the crate's one CBOR reader.

use hamt::codec::cbor::{self, Reader};
use hamt::{Cid, Codec};

/// The CIDs `data` (the block of `cid`) links to, in encoded order, identity CIDs included
/// (a walk looks inside them rather than fetching them).
///
/// # Errors
/// A reason when the block does not parse as its codec says.
pub(crate) fn links(cid: &Cid, data: &[u8]) -> Result<Vec<Cid>, String> {
    match Codec::of(cid).map_err(|e| e.to_string())? {
        Codec::Raw => Ok(Vec::new()),
        Codec::DagCbor => {
            let mut out = Vec::new();
            let mut r = Reader::new(data);
            walk(&mut r, 0, &mut out).map_err(|e| format!("DAG-CBOR block {cid}: {e}"))?;
            if r.remaining() != 0 {
                return Err(format!("DAG-CBOR block {cid}: bytes after the item"));
            }
            Ok(out)
        }
        // DAG-PB links are a list in the block: `hamt::dag::links` keeps their order.
        _ => hamt::dag::links(cid, data).map_err(|e| e.to_string()),
    }
}

fn walk(r: &mut Reader<'_>, depth: usize, out: &mut Vec<Cid>) -> Result<(), &'static str> {
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
                walk(r, depth + 1, out)?;
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
        cbor::TAG => walk(r, depth + 1, out),
        // Integers, simple values and floats are their head.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use hamt::HashAlg;

    use super::*;

    #[test]
    fn map_links_come_in_encoded_order() {
        let a = HashAlg::Blake3.cid(Codec::Raw, b"a");
        let b = HashAlg::Blake3.cid(Codec::Raw, b"b");
        let c = HashAlg::Blake3.cid(Codec::Raw, b"c");
        // {"z": a, "aa": b} in DAG-CBOR's length-first key order, then a list [c].
        let mut block = Vec::new();
        cbor::write_head(&mut block, cbor::ARRAY, 2);
        cbor::write_head(&mut block, cbor::MAP, 2);
        cbor::write_head(&mut block, cbor::TEXT, 1);
        block.push(b'z');
        cbor::write_cid(&mut block, &a.to_bytes());
        cbor::write_head(&mut block, cbor::TEXT, 2);
        block.extend_from_slice(b"aa");
        cbor::write_cid(&mut block, &b.to_bytes());
        cbor::write_head(&mut block, cbor::ARRAY, 1);
        cbor::write_cid(&mut block, &c.to_bytes());
        let cid = HashAlg::Blake3.cid(Codec::DagCbor, &block);
        assert_eq!(links(&cid, &block).unwrap(), vec![a, b, c]);
        // The data model's walk sorts the map by key, so it disagrees on order, not on
        // the set.
        let mut model = hamt::dag::links(&cid, &block).unwrap();
        assert_eq!(model, vec![b, a, c]);
        model.sort();
        let mut ours = links(&cid, &block).unwrap();
        ours.sort();
        assert_eq!(model, ours);

        assert!(links(&cid, &block[..block.len() - 1]).is_err());
        let mut trailing = block.clone();
        trailing.push(0);
        assert!(links(&cid, &trailing).is_err());
        let raw = HashAlg::Blake3.cid(Codec::Raw, &block);
        assert!(links(&raw, &block).unwrap().is_empty());
    }
}
