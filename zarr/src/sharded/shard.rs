//! Shards: DAG-CBOR lists of chunk CIDs (or null), and reading one entry without decoding
//! the rest.

use hamt::Cid;

/// A shard's entries in row-major chunk order.
pub(crate) type Entries = Vec<Option<Cid>>;

fn push_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let major = major << 5;
    // Each arm checked the value fits, so the casts cannot truncate.
    #[allow(clippy::cast_possible_truncation)]
    match n {
        0..=23 => out.push(major | n as u8),
        24..=0xff => out.extend_from_slice(&[major | 0x18, n as u8]),
        0x100..=0xffff => {
            out.push(major | 0x19);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 0x1a);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 0x1b);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// The DAG-CBOR bytes of a shard (what py-hamt's `dag_cbor.encode(list)` gives).
pub(crate) fn encode(entries: &[Option<Cid>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + entries.len() * 41);
    push_head(&mut out, 4, entries.len() as u64);
    for entry in entries {
        match entry {
            None => out.push(0xf6),
            Some(cid) => {
                let bytes = cid.to_bytes();
                out.extend_from_slice(&[0xd8, 42]);
                push_head(&mut out, 2, bytes.len() as u64 + 1);
                out.push(0);
                out.extend_from_slice(&bytes);
            }
        }
    }
    out
}

/// Decodes a whole shard, which must hold exactly `expected` entries.
pub(crate) fn decode(bytes: &[u8], expected: u64) -> Result<Entries, String> {
    let value: ipld_core::ipld::Ipld =
        serde_ipld_dagcbor::from_slice(bytes).map_err(|e| format!("not DAG-CBOR: {e}"))?;
    let ipld_core::ipld::Ipld::List(items) = value else {
        return Err("did not decode to a list".into());
    };
    if items.len() as u64 != expected {
        return Err(format!(
            "contains {} entries; expected {expected}",
            items.len()
        ));
    }
    items
        .into_iter()
        .map(|item| match item {
            ipld_core::ipld::Ipld::Null => Ok(None),
            ipld_core::ipld::Ipld::Link(cid) => Ok(Some(cid)),
            _ => Err("contains a non-CID entry".into()),
        })
        .collect()
}

/// Reads a head at `pos`: (major type, argument, position after it).
fn head(data: &[u8], pos: usize) -> Result<(u8, u64, usize), String> {
    let first = *data.get(pos).ok_or("truncated CBOR item")?;
    let (major, info) = (first >> 5, first & 0x1f);
    let len = match info {
        0..=23 => return Ok((major, u64::from(info), pos + 1)),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return Err("indefinite or reserved CBOR item length is not supported".into()),
    };
    let arg = data
        .get(pos + 1..pos + 1 + len)
        .ok_or("truncated CBOR item")?;
    let value = arg.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    Ok((major, value, pos + 1 + len))
}

/// The position after the item at `pos`.
fn skip(data: &[u8], pos: usize, depth: usize) -> Result<usize, String> {
    if depth > 64 {
        return Err("CBOR nested too deeply".into());
    }
    let (major, arg, mut pos) = head(data, pos)?;
    match major {
        0 | 1 | 7 => Ok(pos),
        2 | 3 => {
            let end = usize::try_from(arg)
                .ok()
                .and_then(|n| pos.checked_add(n))
                .filter(|&end| end <= data.len())
                .ok_or("truncated CBOR byte or text string")?;
            Ok(end)
        }
        4 | 5 => {
            let items = if major == 5 {
                arg.saturating_mul(2)
            } else {
                arg
            };
            for _ in 0..items {
                pos = skip(data, pos, depth + 1)?;
            }
            Ok(pos)
        }
        _ => skip(data, pos, depth + 1),
    }
}

/// Entry `index` of a shard that must hold `expected` entries, decoding only that entry
/// (py-hamt's sparse read).
pub(crate) fn entry(bytes: &[u8], index: u64, expected: u64) -> Result<Option<Cid>, String> {
    if bytes.is_empty() {
        return Err("shard bytes are empty".into());
    }
    let (major, count, mut pos) = head(bytes, 0)?;
    if major != 4 {
        return Err("shard bytes do not start with a DAG-CBOR list".into());
    }
    if count != expected {
        return Err(format!("contains {count} entries; expected {expected}"));
    }
    if index >= count {
        return Err("shard entry index out of range".into());
    }
    for _ in 0..index {
        pos = skip(bytes, pos, 0)?;
    }
    let end = skip(bytes, pos, 0)?;
    let value: ipld_core::ipld::Ipld =
        serde_ipld_dagcbor::from_slice(&bytes[pos..end]).map_err(|e| format!("bad entry: {e}"))?;
    match value {
        ipld_core::ipld::Ipld::Null => Ok(None),
        ipld_core::ipld::Ipld::Link(cid) => Ok(Some(cid)),
        _ => Err("shard entry contains a non-CID value".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hamt::{Codec, HashAlg};

    #[test]
    fn encode_matches_dag_cbor_and_entries_decode_alone() {
        let entries: Entries = (0..300u32)
            .map(|i| (i % 3 != 0).then(|| HashAlg::Blake3.cid(Codec::Raw, &i.to_le_bytes())))
            .collect();
        let bytes = encode(&entries);
        let ipld = ipld_core::ipld::Ipld::List(
            entries
                .iter()
                .map(|e| e.map_or(ipld_core::ipld::Ipld::Null, ipld_core::ipld::Ipld::Link))
                .collect(),
        );
        assert_eq!(bytes, serde_ipld_dagcbor::to_vec(&ipld).unwrap());
        assert_eq!(decode(&bytes, 300).unwrap(), entries);
        for i in [0u64, 1, 2, 150, 299] {
            assert_eq!(
                entry(&bytes, i, 300).unwrap(),
                entries[usize::try_from(i).unwrap()]
            );
        }
        assert!(decode(&bytes, 301).is_err());
        assert!(entry(&bytes, 0, 299).is_err());
        assert!(entry(&bytes, 300, 300).is_err());
        for cut in [1, 10, bytes.len() - 1] {
            assert!(decode(&bytes[..cut], 300).is_err());
            assert!(entry(&bytes[..cut], 299, 300).is_err(), "cut {cut}");
        }
        assert!(entry(&[], 0, 1).is_err());
        assert!(entry(&[0xa0], 0, 0).is_err());
    }
}
