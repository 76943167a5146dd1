//! Buckets kept as their DAG-CBOR bytes.
//!
//! A bucket is a CBOR map `{key: CID}` of at most `max_bucket_size` (usually 4) entries, keys
//! in DAG-CBOR order. A large tree has one bucket per few keys, so the bucket's in-memory
//! form decides the tree's footprint and how much work a load and a flush do. Here a bucket
//! is exactly its canonical encoding, stored inside its node's one buffer (see
//! [`Node`](super::Node)): decoding a node only validates its buckets, encoding one
//! copies them, and no bucket costs an allocation of its own.
//!
//! Everything in this module that reads a bucket trusts it: buckets are validated by
//! [`validate`] when a node is decoded, or written by [`write_bucket`] and friends.

use std::cmp::Ordering;

use crate::codec::cbor::{self, Reader};
use crate::link::Link;

/// One key of a bucket and the CID of its value block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: Box<str>,
    pub(crate) value: Link,
}

/// A bucket's canonical CBOR encoding, borrowed from its node.
#[derive(Clone, Copy)]
pub(crate) struct BucketRef<'a>(&'a [u8]);

impl std::fmt::Debug for BucketRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|e| e.key()))
            .finish()
    }
}

/// One entry, borrowed from a bucket.
#[derive(Clone, Copy)]
pub(super) struct EntryRef<'a> {
    /// The key's bytes (valid UTF-8: checked when the bucket was built).
    key: &'a [u8],
    /// The binary CID of the value.
    pub(super) cid: &'a [u8],
    /// Where the entry starts and ends in the bucket's bytes.
    span: (usize, usize),
}

impl<'a> EntryRef<'a> {
    /// The key.
    pub(super) fn key(&self) -> &'a str {
        // Keys are checked as UTF-8 before they enter a bucket.
        std::str::from_utf8(self.key).unwrap_or_default()
    }

    pub(super) fn link(&self) -> Link {
        // The bytes were parsed as a CID when the bucket was built.
        Link::from_bytes(self.cid).expect("bucket CIDs are validated on construction")
    }

    pub(super) fn to_entry(self) -> Entry {
        Entry {
            key: self.key().into(),
            value: self.link(),
        }
    }
}

/// DAG-CBOR's map key order: shorter keys first, then bytewise.
pub(crate) fn key_order(a: &str, b: &str) -> Ordering {
    bytes_order(a.as_bytes(), b.as_bytes())
}

fn bytes_order(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// What inserting into a bucket did.
pub(crate) enum Insert {
    /// The key was there; its old value.
    Replaced(Link),
    /// The key was added.
    Added,
    /// The key is new and the bucket is full: the caller splits it.
    Full,
}

/// Where a key goes in a bucket, as byte offsets into the bucket's encoding.
pub(super) enum Place {
    /// The key is there, encoded at `start..end`, with value `old`.
    Found { start: usize, end: usize, old: Link },
    /// The key is not there; its entry would go at `at`.
    Missing { at: usize },
}

impl<'a> BucketRef<'a> {
    /// A bucket whose bytes were validated or written by this module.
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        BucketRef(bytes)
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        usize::try_from(cbor::trusted_head(self.0).0).unwrap_or(usize::MAX)
    }

    /// Length of the map header.
    pub(super) fn header_len(&self) -> usize {
        cbor::trusted_head(self.0).1
    }

    /// The entries in key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = EntryRef<'a>> + use<'a> {
        let bytes = self.0;
        let mut pos = cbor::trusted_head(bytes).1;
        std::iter::from_fn(move || {
            if pos >= bytes.len() {
                return None;
            }
            let start = pos;
            let (key_len, h) = cbor::trusted_head(&bytes[pos..]);
            let key_len = usize::try_from(key_len).expect("a key held in memory");
            let key = &bytes[pos + h..pos + h + key_len];
            pos += h + key_len + 2; // the key, then tag 42
            let (cid_len, h) = cbor::trusted_head(&bytes[pos..]);
            let cid_len = usize::try_from(cid_len).expect("a CID held in memory");
            // Skip the identity multibase prefix.
            let cid = &bytes[pos + h + 1..pos + h + cid_len];
            pos += h + cid_len;
            Some(EntryRef {
                key,
                cid,
                span: (start, pos),
            })
        })
    }

    /// The owned entries in key order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = Entry> + use<'a> {
        self.iter().map(EntryRef::to_entry)
    }

    /// The value link of `key`.
    pub(crate) fn find(&self, key: &str) -> Option<Link> {
        self.find_entry(key).map(|e| e.link())
    }

    /// The binary CID of `key`'s value.
    pub(crate) fn find_cid(&self, key: &str) -> Option<&'a [u8]> {
        self.find_entry(key).map(|e| e.cid)
    }

    fn find_entry(&self, key: &str) -> Option<EntryRef<'a>> {
        self.iter().find(|e| e.key == key.as_bytes())
    }

    /// Where `key` is, or would go.
    pub(super) fn place(&self, key: &str) -> Place {
        let key = key.as_bytes();
        for e in self.iter() {
            match bytes_order(key, e.key) {
                Ordering::Less => return Place::Missing { at: e.span.0 },
                Ordering::Equal => {
                    return Place::Found {
                        start: e.span.0,
                        end: e.span.1,
                        old: e.link(),
                    };
                }
                Ordering::Greater => {}
            }
        }
        Place::Missing { at: self.0.len() }
    }
}

/// Appends a map header for a bucket of `len` entries.
pub(super) fn write_header(out: &mut Vec<u8>, len: usize) {
    cbor::write_head(out, cbor::MAP, len as u64);
}

/// Appends one bucket entry: the key as text, then the CID (tag 42, identity prefix).
pub(super) fn write_entry(out: &mut Vec<u8>, key: &[u8], cid: &[u8]) {
    cbor::write_head(out, cbor::TEXT, key.len() as u64);
    out.extend_from_slice(key);
    cbor::write_cid(out, cid);
}

/// Appends a bucket of `(key, binary CID)` pairs already in key order, without duplicates.
pub(super) fn write_sorted<'e>(
    out: &mut Vec<u8>,
    len: usize,
    entries: impl Iterator<Item = (&'e [u8], &'e [u8])>,
) {
    write_header(out, len);
    for (key, cid) in entries {
        write_entry(out, key, cid);
    }
}

/// Appends a bucket of owned entries, in any order, without duplicate keys.
pub(super) fn write_bucket(out: &mut Vec<u8>, entries: &mut [Entry]) {
    entries.sort_by(|a, b| key_order(&a.key, &b.key));
    write_header(out, entries.len());
    for e in entries.iter() {
        e.value
            .with_bytes(|cid| write_entry(out, e.key.as_bytes(), cid));
    }
}

/// Checks the bucket of `count` entries whose map header `r` just read, leaving `r` after
/// it; returns whether it is canonical (shortest headers, keys in order).
pub(super) fn validate(r: &mut Reader<'_>, count: u64) -> Result<bool, &'static str> {
    if count > 255 {
        return Err("bucket of more than 255 keys");
    }
    let mut canonical = true;
    let mut prev: Option<&[u8]> = None;
    for _ in 0..count {
        let (len, minimal) = r.length(cbor::TEXT, "bucket key is not a string")?;
        let key = r.take(len)?;
        std::str::from_utf8(key).map_err(|_| "bucket key is not UTF-8")?;
        let (_, cid_minimal) = r.cid()?;
        canonical &= minimal && cid_minimal;
        if let Some(prev) = prev {
            match bytes_order(prev, key) {
                Ordering::Less => {}
                Ordering::Equal => return Err("duplicate key in a bucket"),
                Ordering::Greater => canonical = false,
            }
        }
        prev = Some(key);
    }
    Ok(canonical)
}

/// Re-encodes a non-canonical bucket in canonical form. Its keys were only checked against
/// their neighbours as written, so a key repeated further apart shows here, once sorted.
pub(super) fn canonicalize(out: &mut Vec<u8>, bucket: BucketRef<'_>) -> Result<(), &'static str> {
    let mut entries: Vec<EntryRef<'_>> = bucket.iter().collect();
    entries.sort_by(|a, b| bytes_order(a.key, b.key));
    if entries.windows(2).any(|w| w[0].key == w[1].key) {
        return Err("duplicate key in a bucket");
    }
    write_sorted(out, entries.len(), entries.iter().map(|e| (e.key, e.cid)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Codec, HashAlg};

    fn link(n: u8) -> Link {
        Link::from_cid(&HashAlg::Blake3.cid(Codec::Raw, &[n]))
    }

    fn bucket(keys: &[&str]) -> Vec<u8> {
        let mut entries: Vec<Entry> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| Entry {
                key: (*k).into(),
                value: link(u8::try_from(i).unwrap()),
            })
            .collect();
        let mut out = Vec::new();
        write_bucket(&mut out, &mut entries);
        out
    }

    #[test]
    fn find_and_place_follow_key_order() {
        let long_key = "k".repeat(300);
        let bytes = bucket(&["bb", "a", &long_key, "ab"]);
        let b = BucketRef::new(&bytes);
        assert_eq!(b.len(), 4);
        let keys: Vec<&str> = b.iter().map(|e| e.key()).collect();
        assert_eq!(keys, vec!["a", "ab", "bb", long_key.as_str()]);
        assert_eq!(b.find("bb"), Some(link(0)));
        assert_eq!(b.find(&long_key), Some(link(2)));
        assert_eq!(b.find("c"), None);
        assert!(matches!(b.place(""), Place::Missing { at } if at == b.header_len()));
        let second = b.iter().nth(1).unwrap().span.0;
        assert!(matches!(b.place("b"), Place::Missing { at } if at == second));
        let long_start = b.iter().nth(3).unwrap().span.0;
        assert!(matches!(b.place("zzzz"), Place::Missing { at } if at == long_start));
        assert!(matches!(b.place(&"l".repeat(300)), Place::Missing { at } if at == bytes.len()));
        assert!(matches!(b.place("ab"), Place::Found { old, .. } if old == link(3)));
        let mut r = Reader::new(&bytes);
        let n = r.head().unwrap().arg;
        assert!(validate(&mut r, n).unwrap());
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn non_canonical_buckets_are_detected_and_fixed() {
        // {"b": cid, "a": cid}: out of order.
        let mut bytes = vec![0xa2];
        write_entry(&mut bytes, b"b", &{
            let mut v = Vec::new();
            link(1).write_bytes(&mut v);
            v
        });
        write_entry(&mut bytes, b"a", &{
            let mut v = Vec::new();
            link(2).write_bytes(&mut v);
            v
        });
        let mut r = Reader::new(&bytes);
        let n = r.head().unwrap().arg;
        assert!(!validate(&mut r, n).unwrap());
        let mut fixed = Vec::new();
        canonicalize(&mut fixed, BucketRef::new(&bytes)).unwrap();
        let keys: Vec<&str> = BucketRef::new(&fixed).iter().map(|e| e.key()).collect();
        assert_eq!(keys, ["a", "b"]);
        // A duplicate key is an error.
        let mut dup = vec![0xa2];
        let mut cid = Vec::new();
        link(1).write_bytes(&mut cid);
        write_entry(&mut dup, b"a", &cid);
        write_entry(&mut dup, b"a", &cid);
        let mut r = Reader::new(&dup);
        let n = r.head().unwrap().arg;
        assert!(validate(&mut r, n).is_err());
        // Also when the repeats are not neighbours: "a", "b", "a" reads as merely out of
        // order, and sorting shows the duplicate.
        let mut apart = vec![0xa3];
        for key in [b"a", b"b", b"a"] {
            write_entry(&mut apart, key, &cid);
        }
        let mut r = Reader::new(&apart);
        let n = r.head().unwrap().arg;
        assert_eq!(validate(&mut r, n), Ok(false));
        assert!(canonicalize(&mut Vec::new(), BucketRef::new(&apart)).is_err());
        // A non-minimal key header is not canonical.
        let mut wide = vec![0xa1, 0x78, 0x01, b'a'];
        wide.extend_from_slice(&[0xd8, 0x2a, 0x58, 0x25, 0x00]);
        wide.extend_from_slice(&cid);
        let mut r = Reader::new(&wide);
        let n = r.head().unwrap().arg;
        assert!(!validate(&mut r, n).unwrap());
    }

    #[test]
    fn long_cids_fit() {
        let cid = cid::Cid::new_v0(HashAlg::Sha2_256.digest(b"v0")).unwrap();
        let mut out = Vec::new();
        write_bucket(
            &mut out,
            &mut [Entry {
                key: "k".into(),
                value: Link::from_cid(&cid),
            }],
        );
        assert_eq!(BucketRef::new(&out).find("k").unwrap().to_cid(), cid);
    }
}
