//! Pack indexes: which blocks a CAR object holds, and where.
//!
//! An index object is `MAGIC ‖ varint pack_len ‖ varint count ‖ count × (varint cid_len ‖ cid
//! ‖ varint offset ‖ varint len) ‖ BLAKE3-256 of everything before`. The pack and its index are
//! both named by the hex BLAKE3 of the index body, so names are write-once and derived from
//! content: two writers storing the same pack write the same objects.

use hamt::Cid;
use hamt::codec::varint;

/// The first bytes of every index object (format version 1).
const MAGIC: &[u8; 8] = b"HAMTIDX1";
const CHECKSUM_LEN: usize = 32;

/// Where a block lives: a byte range of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    /// The pack, as a number in the store's pack table.
    pub(crate) pack: u32,
    /// Offset of the block's data in the pack.
    pub(crate) offset: u64,
    /// The block's length.
    pub(crate) len: u32,
}

/// One entry of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) cid: Cid,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

/// A decoded index object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Index {
    /// Length of the pack object.
    pub(crate) pack_len: u64,
    pub(crate) entries: Vec<Entry>,
}

impl Index {
    /// The index object's bytes and the pack name derived from them.
    pub(crate) fn encode(&self) -> (Vec<u8>, String) {
        let mut out = Vec::with_capacity(16 + self.entries.len() * 48);
        out.extend_from_slice(MAGIC);
        varint::push(&mut out, self.pack_len);
        varint::push(&mut out, self.entries.len() as u64);
        for e in &self.entries {
            let cid = e.cid.to_bytes();
            varint::push(&mut out, cid.len() as u64);
            out.extend_from_slice(&cid);
            varint::push(&mut out, e.offset);
            varint::push(&mut out, u64::from(e.len));
        }
        let hash = blake3::hash(&out);
        out.extend_from_slice(hash.as_bytes());
        (out, hash.to_hex().to_string())
    }

    /// Decodes an index object named `name`, checking its checksum and that the name is the
    /// one its content gives.
    pub(crate) fn decode(name: &str, bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < MAGIC.len() + CHECKSUM_LEN || !bytes.starts_with(MAGIC) {
            return Err("not an index object (bad magic or too short)".into());
        }
        let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        let hash = blake3::hash(body);
        if hash.as_bytes() != sum {
            return Err("checksum mismatch (truncated or altered)".into());
        }
        if hash.to_hex().as_str() != name {
            return Err("its content does not match its name".into());
        }
        let mut input = &body[MAGIC.len()..];
        let pack_len = varint::take(&mut input)?;
        let count = varint::take(&mut input)?;
        // Each entry takes at least four bytes: a bound before allocating.
        if count > input.len() as u64 / 4 {
            return Err(format!(
                "{count} entries cannot fit in {} bytes",
                input.len()
            ));
        }
        let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        for _ in 0..count {
            let cid_len = usize::try_from(varint::take(&mut input)?).map_err(|e| e.to_string())?;
            if cid_len > input.len() {
                return Err("truncated CID".into());
            }
            let (cid_bytes, rest) = input.split_at(cid_len);
            input = rest;
            let cid = Cid::try_from(cid_bytes).map_err(|e| format!("bad CID: {e}"))?;
            let offset = varint::take(&mut input)?;
            let len = u32::try_from(varint::take(&mut input)?).map_err(|_| "block too large")?;
            if offset
                .checked_add(u64::from(len))
                .is_none_or(|end| end > pack_len)
            {
                return Err(format!("{cid} lies past the end of its pack"));
            }
            entries.push(Entry { cid, offset, len });
        }
        if !input.is_empty() {
            return Err("trailing bytes after the entries".into());
        }
        Ok(Self { pack_len, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hamt::{Codec, HashAlg};

    fn sample() -> Index {
        let entries = (0..50u32)
            .map(|i| Entry {
                cid: HashAlg::Blake3.cid(Codec::Raw, &i.to_le_bytes()),
                offset: u64::from(i) * 100 + 60,
                len: 40 + i,
            })
            .collect();
        Index {
            pack_len: 6000,
            entries,
        }
    }

    #[test]
    fn round_trip_and_every_corruption_is_caught() {
        let index = sample();
        let (bytes, name) = index.encode();
        assert_eq!(Index::decode(&name, &bytes).unwrap(), index);
        assert!(Index::decode("0000", &bytes).unwrap_err().contains("name"));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            assert!(Index::decode(&name, &bad).is_err(), "flip at {i}");
        }
        for cut in 0..bytes.len() {
            assert!(Index::decode(&name, &bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn entries_past_the_pack_are_refused() {
        let mut index = sample();
        index.pack_len = 100;
        let (bytes, name) = index.encode();
        assert!(
            Index::decode(&name, &bytes)
                .unwrap_err()
                .contains("past the end")
        );
    }
}
