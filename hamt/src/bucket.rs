//! Buckets packed into one allocation.
//!
//! A bucket holds at most `max_bucket_size` (usually 4) keys, and a large tree has one
//! bucket per few keys, so its in-memory form decides the tree's footprint. A bucket here is
//! a single boxed byte string: a count, then per entry the key's length (LEB128), the key,
//! the CID's length and the CID in binary, entries in DAG-CBOR key order. That is about
//! the size of the encoded bucket, one allocation instead of one per key plus one per bucket.

use std::cmp::Ordering;

use crate::link::Link;
use crate::node::Entry;

/// A non-empty bucket; see the module docs for the layout.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Bucket(Box<[u8]>);

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|e| e.key)).finish()
    }
}

/// One entry, borrowed from a bucket.
#[derive(Clone, Copy)]
pub(crate) struct EntryRef<'a> {
    /// The key (valid UTF-8: checked when the bucket was built).
    pub(crate) key: &'a str,
    /// The binary CID of the value.
    pub(crate) cid: &'a [u8],
}

impl EntryRef<'_> {
    pub(crate) fn link(&self) -> Link {
        // The bytes were parsed as a CID when the bucket was built.
        Link::from_bytes(self.cid).expect("bucket CIDs are validated on construction")
    }

    pub(crate) fn to_entry(self) -> Entry {
        Entry {
            key: self.key.into(),
            value: self.link(),
        }
    }
}

/// DAG-CBOR's map key order: shorter keys first, then bytewise.
pub(crate) fn key_order(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// What [`Bucket::insert`] did.
pub(crate) enum Insert {
    /// The key was there; its old value.
    Replaced(Link),
    /// The key was added.
    Added,
    /// The key is new and the bucket is full: the caller splits it.
    Full,
}

fn push_entry(out: &mut Vec<u8>, key: &str, cid: &[u8]) {
    crate::varint::push(out, key.len() as u64);
    out.extend_from_slice(key.as_bytes());
    // CIDs this crate can hold are at most 1 + 3 varints + 64 digest bytes long.
    out.push(u8::try_from(cid.len()).expect("a CID is shorter than 256 bytes"));
    out.extend_from_slice(cid);
}

impl Bucket {
    /// Builds a bucket from `(key, binary CID)` pairs already in key order, without
    /// duplicates.
    fn from_sorted<'a>(len: usize, entries: impl Iterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut out = Vec::with_capacity(1 + len * 64);
        out.push(u8::try_from(len).expect("buckets hold fewer than 256 keys"));
        for (key, cid) in entries {
            push_entry(&mut out, key, cid);
        }
        Bucket(out.into_boxed_slice())
    }

    /// A bucket of owned entries, in any order, without duplicate keys.
    pub(crate) fn from_entries(mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| key_order(&a.key, &b.key));
        let cids: Vec<Vec<u8>> = entries
            .iter()
            .map(|e| {
                let mut b = Vec::with_capacity(e.value.encoded_len());
                e.value.write_bytes(&mut b);
                b
            })
            .collect();
        Self::from_sorted(
            entries.len(),
            entries
                .iter()
                .zip(&cids)
                .map(|(e, c)| (&*e.key, c.as_slice())),
        )
    }

    /// A bucket of `(key, binary CID)` pairs as decoded; the keys must be distinct. The
    /// CIDs must already be validated.
    pub(crate) fn from_decoded(mut entries: Vec<(&str, &[u8])>) -> Option<Self> {
        entries.sort_by(|a, b| key_order(a.0, b.0));
        if entries.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        Some(Self::from_sorted(entries.len(), entries.into_iter()))
    }

    /// A bucket of one entry.
    pub(crate) fn single(key: &str, value: &Link) -> Self {
        value.with_bytes(|cid| Self::from_sorted(1, std::iter::once((key, cid))))
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.0[0])
    }

    /// Heap bytes held.
    pub(crate) fn byte_len(&self) -> usize {
        self.0.len()
    }

    /// The entries in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = EntryRef<'_>> {
        let mut rest = &self.0[1..];
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            // The layout was written by `push_entry`, so it parses.
            let key_len = crate::varint::take(&mut rest).expect("bucket layout");
            let key_len = usize::try_from(key_len).expect("a key held in memory");
            let (key, after) = rest.split_at(key_len);
            let cid_len = usize::from(after[0]);
            let (cid, after) = after[1..].split_at(cid_len);
            rest = after;
            // Keys are checked as UTF-8 before they enter a bucket.
            let key = std::str::from_utf8(key).unwrap_or_default();
            Some(EntryRef { key, cid })
        })
    }

    /// The owned entries in key order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.iter().map(EntryRef::to_entry)
    }

    /// The value link of `key`.
    pub(crate) fn find(&self, key: &str) -> Option<Link> {
        self.iter().find(|e| e.key == key).map(|e| e.link())
    }

    /// Sets `key` to `value` unless that would take the bucket past `max` entries.
    pub(crate) fn insert(&mut self, key: &str, value: &Link, max: usize) -> Insert {
        let old = self.find(key);
        if old.is_none() && self.len() >= max {
            return Insert::Full;
        }
        let len = self.len() + usize::from(old.is_none());
        let mut out = Vec::with_capacity(self.0.len() + key.len() + 48);
        out.push(u8::try_from(len).expect("buckets hold fewer than 256 keys"));
        let mut placed = false;
        value.with_bytes(|cid| {
            for e in self.iter() {
                if !placed && key_order(key, e.key) != Ordering::Greater {
                    push_entry(&mut out, key, cid);
                    placed = true;
                }
                if e.key != key {
                    push_entry(&mut out, e.key, e.cid);
                }
            }
            if !placed {
                push_entry(&mut out, key, cid);
            }
        });
        *self = Bucket(out.into_boxed_slice());
        match old {
            Some(old) => Insert::Replaced(old),
            None => Insert::Added,
        }
    }

    /// Removes `key`, returning its value and the rest (`None` when nothing is left).
    pub(crate) fn remove(&self, key: &str) -> Option<(Link, Option<Bucket>)> {
        let old = self.find(key)?;
        let rest = self.len() - 1;
        let bucket = (rest > 0).then(|| {
            Self::from_sorted(
                rest,
                self.iter().filter(|e| e.key != key).map(|e| (e.key, e.cid)),
            )
        });
        Some((old, bucket))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Codec, HashAlg};

    fn link(n: u8) -> Link {
        Link::from_cid(&HashAlg::Blake3.cid(Codec::Raw, &[n]))
    }

    #[test]
    fn insert_find_remove_keep_key_order() {
        let long_key = "k".repeat(300);
        let mut b = Bucket::single("bb", &link(1));
        assert!(matches!(b.insert("a", &link(2), 4), Insert::Added));
        assert!(matches!(b.insert(&long_key, &link(3), 4), Insert::Added));
        assert!(matches!(b.insert("ab", &link(4), 4), Insert::Added));
        assert!(matches!(b.insert("zz", &link(5), 4), Insert::Full));
        assert!(matches!(b.insert("a", &link(6), 4), Insert::Replaced(l) if l == link(2)));
        let keys: Vec<&str> = b.iter().map(|e| e.key).collect();
        assert_eq!(keys, vec!["a", "ab", "bb", long_key.as_str()]);
        assert_eq!(b.find("a"), Some(link(6)));
        assert_eq!(b.find(&long_key), Some(link(3)));
        assert_eq!(b.find("c"), None);
        let (old, rest) = b.remove("ab").unwrap();
        assert_eq!(old, link(4));
        let rest = rest.unwrap();
        assert_eq!(rest.len(), 3);
        assert!(rest.remove("zz").is_none());
        let (_, none) = Bucket::single("x", &link(1)).remove("x").unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn long_cids_fit() {
        let cid = cid::Cid::new_v0(HashAlg::Sha2_256.digest(b"v0")).unwrap();
        let b = Bucket::single("k", &Link::from_cid(&cid));
        assert_eq!(b.find("k").unwrap().to_cid(), cid);
    }
}
