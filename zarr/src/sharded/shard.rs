//! Shards: DAG-CBOR lists of chunk CIDs (or null), and reading one entry without decoding
//! the rest.

use hamt::Cid;
use hamt::codec::cbor;

/// A shard's entries in row-major chunk order.
pub(crate) type Entries = Vec<Option<Cid>>;

/// The DAG-CBOR bytes of a shard (what py-hamt's `dag_cbor.encode(list)` gives).
pub(crate) fn encode(entries: &[Option<Cid>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + entries.len() * 41);
    cbor::write_head(&mut out, cbor::ARRAY, entries.len() as u64);
    for entry in entries {
        match entry {
            None => out.push(cbor::NULL),
            Some(cid) => cbor::write_cid(&mut out, &cid.to_bytes()),
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

/// Entry `index` of a shard that must hold `expected` entries, decoding only that entry
/// (py-hamt's sparse read).
pub(crate) fn entry(bytes: &[u8], index: u64, expected: u64) -> Result<Option<Cid>, String> {
    if bytes.is_empty() {
        return Err("shard bytes are empty".into());
    }
    let mut reader = cbor::Reader::new(bytes);
    let list = reader.head()?;
    if list.major != cbor::ARRAY {
        return Err("shard bytes do not start with a DAG-CBOR list".into());
    }
    let count = list.arg;
    if count != expected {
        return Err(format!("contains {count} entries; expected {expected}"));
    }
    if index >= count {
        return Err("shard entry index out of range".into());
    }
    for _ in 0..index {
        reader.skip()?;
    }
    let start = reader.position();
    reader.skip()?;
    let value: ipld_core::ipld::Ipld =
        serde_ipld_dagcbor::from_slice(&bytes[start..reader.position()])
            .map_err(|e| format!("bad entry: {e}"))?;
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
