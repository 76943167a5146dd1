//! The pieces of CBOR (RFC 8949) that DAG-CBOR blocks of a fixed shape need, for code that
//! writes and reads such blocks by hand rather than through a serde data model: item heads,
//! CIDs, and a reader that checks untrusted bytes as it goes.
//!
//! A head is an item's first byte (major type in the top three bits, then either the
//! argument itself, below 24, or how many argument bytes follow) and its big-endian
//! argument. A CID is tag 42 over a byte string holding `0x00` (the identity multibase
//! prefix) and then the binary CID.
//!
//! The writers emit the shortest heads, as DAG-CBOR requires. The [`Reader`] also accepts
//! longer ones and says so ([`Head::minimal`]), so that a caller can tell canonical bytes
//! from merely valid ones. Errors are static reasons: callers wrap them with what they were
//! reading, as [`Error::Decode`](crate::Error::Decode) does.
//!
//! ```
//! use hamt::codec::cbor::{self, Reader};
//! use hamt::{Codec, HashAlg};
//!
//! let cid = HashAlg::Blake3.cid(Codec::Raw, b"value").to_bytes();
//! let mut out = Vec::new();
//! cbor::write_head(&mut out, cbor::ARRAY, 1);
//! cbor::write_cid(&mut out, &cid);
//! assert_eq!(out.len(), 1 + cbor::cid_head_len(cid.len()) + cid.len());
//!
//! let mut r = Reader::new(&out);
//! let head = r.head()?;
//! assert_eq!((head.major, head.arg, head.minimal), (cbor::ARRAY, 1, true));
//! assert_eq!(r.cid()?, (&cid[..], true));
//! assert_eq!(r.remaining(), 0);
//! # Ok::<(), &'static str>(())
//! ```

/// Major type 0: an unsigned integer.
pub const UNSIGNED: u8 = 0;
/// Major type 1: a negative integer.
pub const NEGATIVE: u8 = 1;
/// Major type 2: a byte string.
pub const BYTES: u8 = 2;
/// Major type 3: a UTF-8 text string.
pub const TEXT: u8 = 3;
/// Major type 4: an array (a list).
pub const ARRAY: u8 = 4;
/// Major type 5: a map.
pub const MAP: u8 = 5;
/// Major type 6: a tag on the item that follows.
pub const TAG: u8 = 6;
/// Major type 7: simple values and floats.
pub const SIMPLE: u8 = 7;

/// The byte of `null`.
pub const NULL: u8 = 0xf6;

/// The tag DAG-CBOR puts on a CID.
pub const CID_TAG: u64 = 42;

/// Tag 42's head, the first bytes of every CID.
const CID_TAG_HEAD: [u8; 2] = [0xd8, 0x2a];

/// Items nested deeper than this are refused by [`Reader::skip`].
pub const MAX_DEPTH: usize = 64;

/// Appends the head of an item of major type `major` (0 to 7) with argument `arg`, in its
/// shortest form.
#[inline]
pub fn write_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    // Each arm's bound makes its cast lossless.
    #[allow(clippy::cast_possible_truncation)]
    match arg {
        0..=23 => out.push(m | arg as u8),
        24..=0xff => out.extend_from_slice(&[m | 0x18, arg as u8]),
        0x100..=0xffff => {
            out.push(m | 0x19);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 0x1a);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 0x1b);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }
}

/// The length of the shortest head with argument `arg`: what [`write_head`] writes.
#[inline]
pub const fn head_len(arg: u64) -> usize {
    match arg {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Appends the binary CID `cid` as a DAG-CBOR link: tag 42 over the byte string
/// `0x00 ‖ cid`.
#[inline]
pub fn write_cid(out: &mut Vec<u8>, cid: &[u8]) {
    out.extend_from_slice(&CID_TAG_HEAD);
    write_head(out, BYTES, cid.len() as u64 + 1);
    out.push(0x00); // the identity multibase prefix
    out.extend_from_slice(cid);
}

/// The bytes [`write_cid`] writes before a binary CID of `cid_len` bytes: the CID's
/// encoding is this long plus `cid_len`.
#[inline]
pub const fn cid_head_len(cid_len: usize) -> usize {
    CID_TAG_HEAD.len() + head_len(cid_len as u64 + 1) + 1
}

/// The argument and head length of the head at the front of `bytes`, which this crate
/// wrote or checked: it panics on a truncated head rather than report it.
#[inline]
pub(crate) fn trusted_head(bytes: &[u8]) -> (u64, usize) {
    let info = bytes[0] & 0x1f;
    let be = |n: usize| {
        bytes[1..=n]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    };
    match info {
        0..=23 => (u64::from(info), 1),
        24 => (be(1), 2),
        25 => (be(2), 3),
        26 => (be(4), 5),
        _ => (be(8), 9),
    }
}

/// An item's head, as [`Reader::head`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The major type, 0 to 7 ([`UNSIGNED`] … [`SIMPLE`]).
    pub major: u8,
    /// The argument: a length, a count, a tag number or an integer.
    pub arg: u64,
    /// True when the head is the shortest for its argument, as DAG-CBOR requires.
    pub minimal: bool,
}

/// A reader over untrusted bytes that checks every item it reads.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `data`.
    #[inline]
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// How many bytes were read.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// How many bytes are left.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Reads the next byte if it is `byte`; true when it was.
    #[inline]
    pub fn eat(&mut self, byte: u8) -> bool {
        let next = self.data.get(self.pos) == Some(&byte);
        self.pos += usize::from(next);
        next
    }

    /// The next `n` bytes.
    ///
    /// # Errors
    /// `"truncated"` when fewer are left.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if n > self.remaining() {
            return Err("truncated");
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next head.
    ///
    /// # Errors
    /// `"truncated"`, and `"indefinite lengths are not DAG-CBOR"` for the additional
    /// information values 28 to 31.
    #[inline]
    pub fn head(&mut self) -> Result<Head, &'static str> {
        let first = self.take(1)?[0];
        let major = first >> 5;
        let info = first & 0x1f;
        let mut be = |n: usize| -> Result<u64, &'static str> {
            Ok(self
                .take(n)?
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
        };
        let (arg, len) = match info {
            0..=23 => (u64::from(info), 1),
            24 => (be(1)?, 2),
            25 => (be(2)?, 3),
            26 => (be(4)?, 5),
            27 => (be(8)?, 9),
            _ => return Err("indefinite lengths are not DAG-CBOR"),
        };
        Ok(Head {
            major,
            arg,
            minimal: head_len(arg) == len,
        })
    }

    /// The argument of the next head, which must be of major type `major`, as a length;
    /// with whether the head was minimal.
    ///
    /// # Errors
    /// `what` for another major type; as [`head`](Self::head).
    #[inline]
    pub fn length(&mut self, major: u8, what: &'static str) -> Result<(usize, bool), &'static str> {
        let head = self.head()?;
        if head.major != major {
            return Err(what);
        }
        Ok((
            usize::try_from(head.arg).map_err(|_| "truncated")?,
            head.minimal,
        ))
    }

    /// A CID (tag 42 over `0x00 ‖ binary CID`), checked to parse; its binary form, and
    /// whether its byte string's head was minimal.
    ///
    /// # Errors
    /// `"expected a CID (tag 42)"`, `"CID is not a byte string"`, `"invalid CID"`,
    /// `"CID lacks the identity multibase prefix"`, `"truncated"`.
    #[inline]
    pub fn cid(&mut self) -> Result<(&'a [u8], bool), &'static str> {
        if self.take(2)? != CID_TAG_HEAD {
            return Err("expected a CID (tag 42)");
        }
        let (len, minimal) = self.length(BYTES, "CID is not a byte string")?;
        let bytes = self.take(len)?;
        match bytes.split_first() {
            Some((0, cid)) if crate::link::is_cid(cid) => Ok((cid, minimal)),
            Some((0, _)) => Err("invalid CID"),
            _ => Err("CID lacks the identity multibase prefix"),
        }
    }

    /// Skips one whole item, with everything nested in it, without checking strings or
    /// tags further.
    ///
    /// # Errors
    /// As [`head`](Self::head), and `"nested too deeply"` past [`MAX_DEPTH`] levels.
    pub fn skip(&mut self) -> Result<(), &'static str> {
        self.skip_at(0)
    }

    fn skip_at(&mut self, depth: usize) -> Result<(), &'static str> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply");
        }
        let head = self.head()?;
        match head.major {
            BYTES | TEXT => {
                let len = usize::try_from(head.arg).map_err(|_| "truncated")?;
                self.take(len).map(drop)
            }
            ARRAY | MAP => {
                let items = if head.major == MAP {
                    head.arg.saturating_mul(2)
                } else {
                    head.arg
                };
                // Every item takes a byte at least: a count past the input ends in an error
                // as soon as the bytes run out.
                for _ in 0..items {
                    self.skip_at(depth + 1)?;
                }
                Ok(())
            }
            TAG => self.skip_at(depth + 1),
            // Integers and simple values are their head (a float's bytes are its argument).
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use ipld_core::ipld::Ipld;

    use super::*;
    use crate::block::{Codec, HashAlg};

    #[test]
    fn heads_are_the_shortest_and_read_back() {
        for arg in [
            0,
            23,
            24,
            255,
            256,
            65_535,
            65_536,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ] {
            for major in [UNSIGNED, BYTES, TEXT, ARRAY, MAP, TAG] {
                let mut out = Vec::new();
                write_head(&mut out, major, arg);
                assert_eq!(out.len(), head_len(arg), "{major} {arg}");
                assert_eq!(trusted_head(&out), (arg, out.len()));
                let mut r = Reader::new(&out);
                assert_eq!(
                    r.head(),
                    Ok(Head {
                        major,
                        arg,
                        minimal: true
                    })
                );
                assert_eq!(r.remaining(), 0);
            }
            // What serde_ipld_dagcbor writes for an unsigned integer.
            let mut out = Vec::new();
            write_head(&mut out, UNSIGNED, arg);
            assert_eq!(out, serde_ipld_dagcbor::to_vec(&arg).unwrap());
        }
        // A longer head than needed reads, and is not minimal.
        let mut r = Reader::new(&[0x19, 0x00, 0x05]);
        assert_eq!(
            r.head(),
            Ok(Head {
                major: UNSIGNED,
                arg: 5,
                minimal: false
            })
        );
        for bad in [&[0x1f][..], &[0x9f], &[0x1c], &[0x19, 0x00], &[]] {
            assert!(Reader::new(bad).head().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cids_match_serde_ipld_dagcbor_and_are_checked() {
        let cid = HashAlg::Blake3.cid(Codec::Raw, b"x");
        let mut out = Vec::new();
        write_cid(&mut out, &cid.to_bytes());
        assert_eq!(out, serde_ipld_dagcbor::to_vec(&Ipld::Link(cid)).unwrap());
        assert_eq!(
            out.len(),
            cid_head_len(cid.encoded_len()) + cid.encoded_len()
        );
        let mut r = Reader::new(&out);
        assert_eq!(r.cid(), Ok((&cid.to_bytes()[..], true)));
        assert_eq!(r.position(), out.len());

        let mut bad = out.clone();
        bad[0] = 0xd9;
        assert_eq!(Reader::new(&bad).cid(), Err("expected a CID (tag 42)"));
        let mut bad = out.clone();
        bad[2] = 0x78; // a text string
        assert_eq!(Reader::new(&bad).cid(), Err("CID is not a byte string"));
        let mut bad = out.clone();
        bad[4] = 0x01;
        assert_eq!(
            Reader::new(&bad).cid(),
            Err("CID lacks the identity multibase prefix")
        );
        let mut bad = out.clone();
        bad[5] = 0x7f; // CID version 127
        assert_eq!(Reader::new(&bad).cid(), Err("invalid CID"));
        assert_eq!(Reader::new(&out[..out.len() - 1]).cid(), Err("truncated"));
    }

    #[test]
    fn skip_passes_whole_items() {
        let cid = HashAlg::Blake3.cid(Codec::Raw, b"x");
        let value = Ipld::List(vec![
            Ipld::Null,
            Ipld::Integer(-70_000),
            Ipld::Float(1.5),
            Ipld::String("text".into()),
            Ipld::Bytes(vec![1; 300]),
            Ipld::Map([("k".to_string(), Ipld::Link(cid))].into_iter().collect()),
            Ipld::List(vec![Ipld::Bool(true), Ipld::List(vec![])]),
        ]);
        let mut bytes = serde_ipld_dagcbor::to_vec(&value).unwrap();
        bytes.push(NULL);
        let mut r = Reader::new(&bytes);
        r.skip().unwrap();
        assert_eq!(r.remaining(), 1);
        assert!(r.eat(NULL));
        assert!(!r.eat(NULL));
        // Each element on its own.
        let mut r = Reader::new(&bytes);
        assert_eq!(r.head().map(|h| (h.major, h.arg)), Ok((ARRAY, 7)));
        for _ in 0..7 {
            r.skip().unwrap();
        }
        assert_eq!(r.remaining(), 1);
        // Truncated anywhere: an error, never a panic.
        for cut in 0..bytes.len() - 1 {
            assert!(Reader::new(&bytes[..cut]).skip().is_err(), "cut {cut}");
        }
        // Deep nesting is refused; a huge count ends with the input.
        let deep = vec![0x81; MAX_DEPTH + 2];
        assert_eq!(Reader::new(&deep).skip(), Err("nested too deeply"));
        let huge = [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert_eq!(Reader::new(&huge).skip(), Err("truncated"));
    }
}
