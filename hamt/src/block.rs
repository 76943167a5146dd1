//! Codecs, hash functions and CIDs: how a block's bytes become its address.

use std::str::FromStr;

use bytes::Bytes;
use cid::Cid;
use multihash::Multihash;
use sha2::Digest as _;

use crate::error::{Error, Result};

/// Multicodec codes of the block codecs this crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// Raw bytes (`0x55`): HAMT values.
    Raw,
    /// DAG-CBOR (`0x71`): HAMT nodes and structured data.
    DagCbor,
    /// DAG-PB (`0x70`): UnixFS files, as Kubo stores values above its chunker size.
    DagPb,
}

impl Codec {
    /// The multicodec code.
    pub const fn code(self) -> u64 {
        match self {
            Codec::Raw => 0x55,
            Codec::DagCbor => 0x71,
            Codec::DagPb => 0x70,
        }
    }

    /// The codec of a CID.
    ///
    /// # Errors
    /// [`Error::UnsupportedCodec`] for codecs other than raw, DAG-CBOR and DAG-PB.
    pub fn of(cid: &Cid) -> Result<Self> {
        Self::try_from(cid.codec())
    }
}

impl TryFrom<u64> for Codec {
    type Error = Error;

    fn try_from(code: u64) -> Result<Self> {
        match code {
            0x55 => Ok(Codec::Raw),
            0x71 => Ok(Codec::DagCbor),
            0x70 => Ok(Codec::DagPb),
            code => Err(Error::UnsupportedCodec { code }),
        }
    }
}

/// The multihash functions a store can address blocks with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HashAlg {
    /// BLAKE3 with a 32-byte digest (multihash `0x1e`): py-hamt's and this crate's default.
    #[default]
    Blake3,
    /// SHA2-256 (multihash `0x12`): the IPFS default.
    Sha2_256,
}

const IDENTITY: u64 = 0x00;
const BLAKE3: u64 = 0x1e;
const SHA2_256: u64 = 0x12;

impl HashAlg {
    /// The multihash code.
    pub const fn code(self) -> u64 {
        match self {
            HashAlg::Blake3 => BLAKE3,
            HashAlg::Sha2_256 => SHA2_256,
        }
    }

    /// The multihash of `data`.
    pub fn digest(self, data: &[u8]) -> Multihash<64> {
        let digest: [u8; 32] = match self {
            HashAlg::Blake3 => *blake3::hash(data).as_bytes(),
            HashAlg::Sha2_256 => sha2::Sha256::digest(data).into(),
        };
        Multihash::wrap(self.code(), &digest).expect("32 bytes fit in a 64-byte multihash")
    }

    /// The CIDv1 of `data` under `codec`.
    pub fn cid(self, codec: Codec, data: &[u8]) -> Cid {
        Cid::new_v1(codec.code(), self.digest(data))
    }
}

impl FromStr for HashAlg {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "blake3" => Ok(HashAlg::Blake3),
            "sha2-256" | "sha256" => Ok(HashAlg::Sha2_256),
            other => Err(Error::InvalidConfig(format!(
                "unknown hash function {other:?} (expected blake3 or sha2-256)"
            ))),
        }
    }
}

/// A block whose CID is known to match its bytes: made by hashing them, or by checking them.
/// Stores can take a `Block` without verifying it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    cid: Cid,
    data: Bytes,
}

impl Block {
    /// Hashes `data` into a CIDv1 of `codec`.
    pub fn new(hash_alg: HashAlg, codec: Codec, data: Bytes) -> Self {
        Self {
            cid: hash_alg.cid(codec, &data),
            data,
        }
    }

    /// A block whose CID the caller has just computed from `data`.
    pub(crate) fn hashed(cid: Cid, data: Bytes) -> Self {
        Self { cid, data }
    }

    /// Checks that `data` hashes to `cid`.
    ///
    /// # Errors
    /// As [`verify`].
    pub fn verified(cid: Cid, data: Bytes) -> Result<Self> {
        verify(&cid, &data)?;
        Ok(Self { cid, data })
    }

    /// The CID.
    pub fn cid(&self) -> &Cid {
        &self.cid
    }

    /// The bytes.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The CID and the bytes.
    pub fn into_parts(self) -> (Cid, Bytes) {
        (self.cid, self.data)
    }
}

/// Checks that `data` hashes to `cid`.
///
/// Works for any codec: only the multihash is checked. Identity multihashes are compared
/// byte for byte.
///
/// # Errors
/// [`Error::Corrupt`] on mismatch, [`Error::UnsupportedHash`] for a multihash this crate
/// cannot compute.
pub fn verify(cid: &Cid, data: &[u8]) -> Result<()> {
    let mh = cid.hash();
    let ok = match mh.code() {
        BLAKE3 if mh.size() == 32 => blake3::hash(data).as_bytes() == mh.digest(),
        SHA2_256 if mh.size() == 32 => sha2::Sha256::digest(data).as_slice() == mh.digest(),
        IDENTITY => mh.digest() == data,
        code => return Err(Error::UnsupportedHash { code }),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Corrupt { cid: *cid })
    }
}

/// The bytes an identity CID carries inside itself, when `cid` is one (multihash `0x00`):
/// such a CID names its data without a block to fetch.
pub fn inline_data(cid: &Cid) -> Option<&[u8]> {
    (cid.hash().code() == IDENTITY).then(|| cid.hash().digest())
}

/// Most bytes an identity CID can carry here (the `cid` crate's multihash size).
pub const MAX_INLINE: usize = 64;

/// The identity CID of `data` under `codec`: a CID that holds the data itself. `None` when
/// `data` is longer than [`MAX_INLINE`].
pub fn identity_cid(codec: Codec, data: &[u8]) -> Option<Cid> {
    Multihash::wrap(IDENTITY, data)
        .ok()
        .map(|mh| Cid::new_v1(codec.code(), mh))
}

/// True when [`verify`] can check blocks named by `cid` (BLAKE3-256, SHA2-256 or identity).
pub fn can_verify(cid: &Cid) -> bool {
    let mh = cid.hash();
    matches!(
        (mh.code(), mh.size()),
        (BLAKE3 | SHA2_256, 32) | (IDENTITY, _)
    )
}

/// Parses a CID from text (any multibase, or base58 CIDv0), with a typed error.
///
/// # Errors
/// [`Error::InvalidCid`] when the text is not a CID.
pub fn parse_cid(input: &str) -> Result<Cid> {
    let text = input.trim();
    let invalid = |reason: String| Error::InvalidCid {
        input: input.to_owned(),
        reason,
    };
    let cid = Cid::try_from(text).map_err(|e| invalid(e.to_string()))?;
    // The CID parser stops after the multihash and ignores whatever follows it, so a root
    // with bytes appended would pass for the root itself: the text must be the CID whole.
    if cid.version() == cid::Version::V1 {
        let (_, bytes) = cid::multibase::decode(text).map_err(|e| invalid(e.to_string()))?;
        if bytes != cid.to_bytes() {
            return Err(invalid(format!(
                "{} bytes follow the CID",
                bytes.len().saturating_sub(cid.encoded_len())
            )));
        }
    }
    Ok(cid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blake3_raw_cid_matches_kubo() {
        // `echo -n hello | ipfs add --hash=blake3 --cid-version=1 --raw-leaves` gives this CID.
        let cid = HashAlg::Blake3.cid(Codec::Raw, b"hello");
        assert_eq!(cid.codec(), 0x55);
        assert_eq!(cid.hash().code(), 0x1e);
        assert!(cid.to_string().starts_with("bafkr4i"));
        verify(&cid, b"hello").unwrap();
        assert!(matches!(verify(&cid, b"hellp"), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn sha256_dag_cbor_prefix() {
        let cid = HashAlg::Sha2_256.cid(Codec::DagCbor, b"\xa0");
        assert!(cid.to_string().starts_with("bafyrei"));
        verify(&cid, b"\xa0").unwrap();
    }

    #[test]
    fn a_cid_with_bytes_after_it_is_refused() {
        let cid = HashAlg::Blake3.cid(Codec::DagCbor, b"\xa0");
        let text = cid.to_string();
        assert_eq!(parse_cid(&text).unwrap(), cid);
        assert_eq!(parse_cid(&format!("  {text}\n")).unwrap(), cid);
        assert_eq!(parse_cid(&text.to_uppercase()).unwrap(), cid);
        for bad in [
            format!("{text}aaaaaaaa"),
            format!("{text}a"),
            format!("{text}q"),
        ] {
            assert!(
                matches!(parse_cid(&bad), Err(Error::InvalidCid { .. })),
                "{bad} was accepted"
            );
        }
        let v0 = "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n";
        assert_eq!(parse_cid(v0).unwrap().version(), cid::Version::V0);
        assert!(parse_cid(&format!("{v0}a")).is_err());
    }

    #[test]
    fn bad_cid_text_is_typed() {
        assert!(matches!(
            parse_cid("not-a-cid"),
            Err(Error::InvalidCid { .. })
        ));
    }
}
