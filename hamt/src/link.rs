//! Compact CIDs for the inside of nodes, and a fast hasher for maps keyed by hashes.

use std::hash::{BuildHasherDefault, Hasher};

use cid::{Cid, Version};
use multihash::Multihash;

/// A CID as stored in a node. A CIDv1 with one-byte codec and hash codes and a digest of at
/// most 32 bytes (every node and value py-hamt writes, and inlined identity values) is kept
/// inline as its binary bytes, which is also exactly how it is encoded; anything else is
/// boxed. A [`Cid`] takes 88 bytes and must be re-serialized for every encode; this takes 40
/// and is copied out as is.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Link {
    /// The binary CID in `bytes[..len]`, the rest zero.
    Short {
        len: u8,
        bytes: [u8; 36],
    },
    Long(Box<Cid>),
}

impl std::hash::Hash for Link {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            // Eight bytes of a cryptographic digest are already a good hash.
            Link::Short { bytes, .. } => {
                let mut word = [0u8; 8];
                word.copy_from_slice(&bytes[4..12]);
                state.write_u64(u64::from_le_bytes(word));
            }
            Link::Long(cid) => cid.hash(state),
        }
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_cid())
    }
}

impl Link {
    pub(crate) fn from_cid(cid: &Cid) -> Self {
        let mh = cid.hash();
        match (
            cid.version(),
            u8::try_from(cid.codec()),
            u8::try_from(mh.code()),
            mh.size(),
        ) {
            (Version::V1, Ok(codec @ 0..0x80), Ok(code @ 0..0x80), size @ 0..=32) => {
                let mut bytes = [0u8; 36];
                bytes[..4].copy_from_slice(&[1, codec, code, size]);
                let len = 4 + usize::from(size);
                bytes[4..len].copy_from_slice(mh.digest());
                Link::Short {
                    len: size + 4,
                    bytes,
                }
            }
            _ => Link::Long(Box::new(*cid)),
        }
    }

    pub(crate) fn to_cid(&self) -> Cid {
        match self {
            Link::Short { len, bytes } => {
                let mh = Multihash::wrap(u64::from(bytes[2]), &bytes[4..usize::from(*len)])
                    .expect("a digest of at most 32 bytes fits a 64-byte multihash");
                Cid::new_v1(u64::from(bytes[1]), mh)
            }
            Link::Long(cid) => **cid,
        }
    }

    /// The identity CID of `data` under `codec`, when it fits the short form (at most 32
    /// bytes of data).
    pub(crate) fn identity(codec: crate::Codec, data: &[u8]) -> Option<Self> {
        let codec = u8::try_from(codec.code()).ok().filter(|c| *c < 0x80)?;
        let size = u8::try_from(data.len()).ok().filter(|n| *n <= 32)?;
        let mut bytes = [0u8; 36];
        bytes[..4].copy_from_slice(&[1, codec, 0, size]);
        bytes[4..4 + data.len()].copy_from_slice(data);
        Some(Link::Short {
            len: size + 4,
            bytes,
        })
    }

    /// Parses the binary form of a CID.
    pub(crate) fn from_bytes(input: &[u8]) -> Result<Self, cid::Error> {
        match input {
            [1, 0..0x80, 0..0x80, size @ 0..=32, digest @ ..]
                if digest.len() == usize::from(*size) =>
            {
                let mut bytes = [0u8; 36];
                bytes[..input.len()].copy_from_slice(input);
                Ok(Link::Short {
                    len: size + 4,
                    bytes,
                })
            }
            _ => Ok(Link::from_cid(&cid_from_bytes(input)?)),
        }
    }

    /// Calls `f` with the binary form of the CID, without allocating for the usual form.
    pub(crate) fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Link::Short { len, bytes } => f(&bytes[..usize::from(*len)]),
            Link::Long(cid) => f(&cid.to_bytes()),
        }
    }

    /// Appends the binary form of the CID.
    pub(crate) fn write_bytes(&self, out: &mut Vec<u8>) {
        match self {
            Link::Short { len, bytes } => out.extend_from_slice(&bytes[..usize::from(*len)]),
            Link::Long(cid) => out.extend_from_slice(&cid.to_bytes()),
        }
    }
}

/// True when `input` is a CID in binary form, all of it. The usual short form is checked
/// here; anything else is left to [`cid_from_bytes`].
pub(crate) fn is_cid(input: &[u8]) -> bool {
    match input {
        [1, 0..0x80, 0..0x80, size @ 0..=32, digest @ ..] => digest.len() == usize::from(*size),
        _ => cid_from_bytes(input).is_ok(),
    }
}

/// Parses a binary CID that is all of `input`. `Cid::try_from(&[u8])` stops where the CID
/// ends and ignores what follows, so bytes after a CID would pass unseen: kept in a block
/// that re-encodes differently (and names the same CID as the bytes without them).
pub(crate) fn cid_from_bytes(input: &[u8]) -> Result<Cid, cid::Error> {
    let mut rest = input;
    let cid = Cid::read_bytes(&mut rest)?;
    if rest.is_empty() {
        Ok(cid)
    } else {
        Err(cid::Error::ParsingError)
    }
}

/// The data an identity CID in binary form carries (see [`inline_data`](crate::inline_data)),
/// read without parsing the CID.
pub(crate) fn inline_bytes(cid: &[u8]) -> Option<&[u8]> {
    match cid {
        [1, 0..0x80, 0, size @ 0..0x80, data @ ..] if data.len() == usize::from(*size) => {
            Some(data)
        }
        _ => None,
    }
}

impl From<&Cid> for Link {
    fn from(cid: &Cid) -> Self {
        Link::from_cid(cid)
    }
}

/// A multiply-rotate hasher (the one rustc uses internally) for maps whose keys are already
/// cryptographic hashes, where `SipHash`'s protection buys nothing and costs most of a lookup.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // The multiply leaves its best-mixed bits at the top; hash tables index with the low
        // ones, so rotate them down.
        self.0.rotate_left(26)
    }
}

/// A `HashMap` keyed by CIDs or links.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Codec, HashAlg};

    #[test]
    fn identity_links_are_the_identity_cids() {
        for len in 0..=crate::MAX_INLINE {
            let data: Vec<u8> = (0..len).map(|i| u8::try_from(i).unwrap()).collect();
            let cid = crate::block::identity_cid(Codec::Raw, &data).unwrap();
            match Link::identity(Codec::Raw, &data) {
                Some(link) => {
                    assert!(len <= 32);
                    assert_eq!(link, Link::from_cid(&cid));
                    assert_eq!(link.to_cid(), cid);
                    let bytes = cid.to_bytes();
                    assert_eq!(inline_bytes(&bytes), Some(&data[..]));
                    assert!(is_cid(&bytes));
                }
                None => assert!(len > 32),
            }
        }
        let blake3 = HashAlg::Blake3.cid(Codec::Raw, b"x").to_bytes();
        assert_eq!(inline_bytes(&blake3), None);
        assert!(is_cid(&blake3));
        assert!(!is_cid(&blake3[..blake3.len() - 1]));
    }

    /// Found by the `node` fuzz target: a CID whose codec needs a two-byte varint (so not the
    /// short form) followed by stray bytes was taken as the CID before them, and the node
    /// kept the stray bytes.
    #[test]
    fn bytes_after_a_cid_are_refused() {
        for cid in [
            Cid::new_v1(3875, HashAlg::Blake3.digest(b"d")),
            Cid::new_v0(HashAlg::Sha2_256.digest(b"c")).unwrap(),
            crate::block::identity_cid(Codec::Raw, &[9; 40]).unwrap(),
            HashAlg::Blake3.cid(Codec::Raw, b"a"),
        ] {
            let mut bytes = cid.to_bytes();
            assert!(is_cid(&bytes));
            assert_eq!(cid_from_bytes(&bytes).unwrap(), cid);
            bytes.extend_from_slice(&[0xfc, 0x37]);
            assert!(!is_cid(&bytes), "{cid} with trailing bytes");
            assert!(cid_from_bytes(&bytes).is_err());
            assert!(Link::from_bytes(&bytes).is_err());
        }
    }

    #[test]
    fn short_and_long_links_round_trip() {
        for cid in [
            HashAlg::Blake3.cid(Codec::Raw, b"a"),
            HashAlg::Sha2_256.cid(Codec::DagCbor, b"b"),
            // CIDv0: boxed.
            Cid::new_v0(HashAlg::Sha2_256.digest(b"c")).unwrap(),
            // A codec above one varint byte: boxed.
            Cid::new_v1(0x0129, HashAlg::Blake3.digest(b"d")),
            // Identity CIDs: short ones inline, long ones boxed.
            crate::block::identity_cid(Codec::Raw, b"").unwrap(),
            crate::block::identity_cid(Codec::Raw, b"12345678").unwrap(),
            crate::block::identity_cid(Codec::Raw, &[9; 32]).unwrap(),
            crate::block::identity_cid(Codec::Raw, &[9; 33]).unwrap(),
        ] {
            let link = Link::from_cid(&cid);
            assert_eq!(link.to_cid(), cid);
            let mut bytes = Vec::new();
            link.write_bytes(&mut bytes);
            assert_eq!(bytes, cid.to_bytes());
            link.with_bytes(|b| assert_eq!(b, bytes));
            assert_eq!(Link::from_bytes(&bytes).unwrap(), link);
        }
        assert!(matches!(
            Link::from_cid(&HashAlg::Blake3.cid(Codec::Raw, b"a")),
            Link::Short { len: 36, .. }
        ));
        assert!(matches!(
            Link::from_cid(&crate::block::identity_cid(Codec::Raw, b"abc").unwrap()),
            Link::Short { len: 7, .. }
        ));
        assert!(matches!(
            Link::from_cid(&crate::block::identity_cid(Codec::Raw, &[0; 40]).unwrap()),
            Link::Long(_)
        ));
    }
}
