//! Reading UnixFS files: values that Kubo stored as DAG-PB files.
//!
//! py-hamt's `KuboCAS` adds every value with Kubo's `add` and a 1 MiB chunker, so a value
//! larger than that is stored as a UnixFS file: a DAG-PB root whose links lead to the chunks.
//! [`cat`] reassembles such a file, checking every block, so a HAMT or a gateway can return
//! the value's bytes whatever form it was stored in.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use cid::Cid;

use crate::block::{Codec, verify};
use crate::error::{Error, Result};
use crate::store::BlockStore;

/// Files deeper than this are refused (Kubo's balanced layout for a 1 TiB file is 3 deep).
const MAX_DEPTH: usize = 16;

/// The parts of a DAG-PB node this crate uses.
#[derive(Debug, Default)]
pub(crate) struct PbNode<'a> {
    pub(crate) links: Vec<Cid>,
    pub(crate) data: Option<&'a [u8]>,
}

/// The parts of a UnixFS `Data` message this crate uses.
#[derive(Debug, Default)]
struct UnixFsData<'a> {
    kind: u64,
    data: Option<&'a [u8]>,
    filesize: Option<u64>,
}

const FILE: u64 = 2;
const RAW: u64 = 0;

impl<'a> PbNode<'a> {
    /// Parses the protobuf of a DAG-PB node: `Links` (field 2, each with its CID in field 1)
    /// and `Data` (field 1).
    pub(crate) fn parse(bytes: &'a [u8]) -> std::result::Result<Self, &'static str> {
        let mut node = PbNode::default();
        let mut r = Proto(bytes);
        while let Some((field, wire)) = r.key()? {
            match (field, wire) {
                (2, 2) => {
                    let mut link = Proto(r.bytes()?);
                    while let Some((f, w)) = link.key()? {
                        match (f, w) {
                            (1, 2) => {
                                let cid = crate::link::cid_from_bytes(link.bytes()?)
                                    .map_err(|_| "bad link CID")?;
                                node.links.push(cid);
                            }
                            (_, w) => link.skip(w)?,
                        }
                    }
                }
                (1, 2) => node.data = Some(r.bytes()?),
                (_, w) => r.skip(w)?,
            }
        }
        Ok(node)
    }
}

impl<'a> UnixFsData<'a> {
    fn parse(bytes: &'a [u8]) -> std::result::Result<Self, &'static str> {
        let mut out = UnixFsData::default();
        let mut r = Proto(bytes);
        while let Some((field, wire)) = r.key()? {
            match (field, wire) {
                (1, 0) => out.kind = r.varint()?,
                (2, 2) => out.data = Some(r.bytes()?),
                (3, 0) => out.filesize = Some(r.varint()?),
                (_, w) => r.skip(w)?,
            }
        }
        Ok(out)
    }
}

/// The bytes of a value block; a value Kubo stored as a UnixFS file (over its 1 MiB
/// chunker size, so with a DAG-PB CID) is reassembled from its chunks, and an identity CID's
/// value is the data it carries.
///
/// # Errors
/// As [`BlockStore::get`] and [`cat`].
pub async fn read_value(store: &Arc<dyn BlockStore>, cid: &Cid) -> Result<Bytes> {
    if let Some(data) = crate::block::inline_data(cid) {
        Ok(Bytes::copy_from_slice(data))
    } else if cid.codec() == Codec::DagPb.code() {
        cat(store, cid, u64::MAX).await
    } else {
        store.get(cid).await
    }
}

/// The bytes of the file (or raw block) named by `cid`: a raw block is returned as it is; a
/// DAG-PB UnixFS file is reassembled from its chunks, every block verified. Files larger than
/// `max_bytes` are refused rather than buffered.
///
/// # Errors
/// [`Error::UnsupportedCodec`] for other codecs; [`Error::Decode`] for DAG-PB that is not a
/// UnixFS file (a directory, say), a tree deeper than 16 levels, or a file over `max_bytes`;
/// store failures; [`Error::Corrupt`].
pub async fn cat(store: &Arc<dyn BlockStore>, cid: &Cid, max_bytes: u64) -> Result<Bytes> {
    let root = store.get(cid).await?;
    verify(cid, &root)?;
    match Codec::of(cid)? {
        Codec::Raw => Ok(root),
        Codec::DagPb => {
            let mut out = BytesMut::new();
            append_file(store, cid, &root, 0, max_bytes, &mut out).await?;
            Ok(out.freeze())
        }
        Codec::DagCbor => Err(Error::UnsupportedCodec { code: cid.codec() }),
    }
}

fn append_file<'a>(
    store: &'a Arc<dyn BlockStore>,
    cid: &'a Cid,
    block: &'a [u8],
    depth: usize,
    max_bytes: u64,
    out: &'a mut BytesMut,
) -> futures::future::BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        let bad = |reason: &str| Error::decode("UnixFS file", Some(*cid), reason);
        if depth > MAX_DEPTH {
            return Err(bad("file tree too deep"));
        }
        let node = PbNode::parse(block).map_err(bad)?;
        let data = UnixFsData::parse(node.data.unwrap_or_default()).map_err(bad)?;
        if data.kind != FILE && data.kind != RAW {
            return Err(bad(
                "not a file (directories and other UnixFS kinds are not served)",
            ));
        }
        if let Some(size) = data.filesize
            && out.len() as u64 + size > max_bytes
        {
            return Err(bad("file is larger than allowed"));
        }
        out.extend_from_slice(data.data.unwrap_or_default());
        let children = store.get_many(&node.links).await?;
        for (child, bytes) in node.links.iter().zip(children) {
            verify(child, &bytes)?;
            match Codec::of(child)? {
                Codec::Raw => out.extend_from_slice(&bytes),
                Codec::DagPb => {
                    append_file(store, child, &bytes, depth + 1, max_bytes, out).await?;
                }
                Codec::DagCbor => return Err(bad("a file chunk is DAG-CBOR")),
            }
            if out.len() as u64 > max_bytes {
                return Err(bad("file is larger than allowed"));
            }
        }
        Ok(())
    })
}

/// A protobuf reader over a byte slice, enough for DAG-PB and UnixFS.
struct Proto<'a>(&'a [u8]);

impl<'a> Proto<'a> {
    fn varint(&mut self) -> std::result::Result<u64, &'static str> {
        crate::codec::varint::take(&mut self.0)
    }

    fn key(&mut self) -> std::result::Result<Option<(u64, u64)>, &'static str> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, k & 7)))
    }

    fn bytes(&mut self) -> std::result::Result<&'a [u8], &'static str> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
        if len > self.0.len() {
            return Err("truncated field");
        }
        let (b, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(b)
    }

    fn skip(&mut self, wire: u64) -> std::result::Result<(), &'static str> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.advance(8),
            2 => self.bytes().map(drop),
            5 => self.advance(4),
            _ => Err("unsupported protobuf wire type"),
        }
    }

    fn advance(&mut self, n: usize) -> std::result::Result<(), &'static str> {
        if n > self.0.len() {
            return Err("truncated field");
        }
        self.0 = &self.0[n..];
        Ok(())
    }
}
