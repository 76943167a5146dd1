//! CAR v1 archives: a header naming the roots, then `(CID, bytes)` sections.
//!
//! [`export_car`] writes every block reachable from a root (a HAMT's nodes and values, or any
//! DAG-CBOR / DAG-PB graph); [`CarReader`] reads an archive back, verifying each block.

use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use futures::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use serde::{Deserialize, Serialize};

use crate::block::verify;
use crate::codec::varint;
use crate::dag::Walk;
use crate::error::{Error, Result};
use crate::store::BlockStore;

/// The largest section [`CarReader`] accepts (a block plus its CID), against hostile input.
pub const MAX_SECTION: usize = 16 << 20;

#[derive(Serialize, Deserialize)]
struct Header {
    roots: Vec<Cid>,
    version: u64,
}

fn io_err(e: std::io::Error) -> Error {
    Error::backend("car", e)
}

fn car_err(reason: impl std::fmt::Display) -> Error {
    Error::decode("CAR", None, reason)
}

/// Writes a CAR v1 archive to an async writer.
#[derive(Debug)]
pub struct CarWriter<W> {
    writer: W,
    buf: Vec<u8>,
    /// Bytes written so far.
    position: u64,
}

impl<W: AsyncWrite + Unpin> CarWriter<W> {
    /// Writes the header naming `roots`.
    ///
    /// # Errors
    /// Write failures.
    pub async fn new(mut writer: W, roots: Vec<Cid>) -> Result<Self> {
        let header = serde_ipld_dagcbor::to_vec(&Header { roots, version: 1 }).map_err(|e| {
            Error::Encode {
                reason: e.to_string(),
            }
        })?;
        let mut buf = Vec::with_capacity(header.len() + 10);
        varint::push(&mut buf, header.len() as u64);
        buf.extend_from_slice(&header);
        writer.write_all(&buf).await.map_err(io_err)?;
        let position = buf.len() as u64;
        Ok(Self {
            writer,
            buf,
            position,
        })
    }

    /// Appends one block; returns the offset of its data in the archive (so an index can
    /// point at the block for a ranged read).
    ///
    /// # Errors
    /// Write failures.
    pub async fn write(&mut self, cid: &Cid, data: &[u8]) -> Result<u64> {
        let cid_bytes = cid.to_bytes();
        self.buf.clear();
        varint::push(&mut self.buf, (cid_bytes.len() + data.len()) as u64);
        self.buf.extend_from_slice(&cid_bytes);
        self.writer.write_all(&self.buf).await.map_err(io_err)?;
        self.writer.write_all(data).await.map_err(io_err)?;
        let offset = self.position + self.buf.len() as u64;
        self.position = offset + data.len() as u64;
        Ok(offset)
    }

    /// Bytes written so far: the archive's length once finished.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Flushes and returns the writer.
    ///
    /// # Errors
    /// Write failures.
    pub async fn finish(mut self) -> Result<W> {
        self.writer.flush().await.map_err(io_err)?;
        Ok(self.writer)
    }
}

/// Reads a CAR v1 archive from an async reader, verifying every block against its CID.
#[derive(Debug)]
pub struct CarReader<R> {
    reader: R,
    roots: Vec<Cid>,
    /// Bytes read so far.
    position: u64,
}

impl<R: AsyncRead + Unpin> CarReader<R> {
    /// Reads the header.
    ///
    /// # Errors
    /// [`Error::Decode`] for anything that is not a CAR v1 header; read failures.
    pub async fn new(mut reader: R) -> Result<Self> {
        let len = read_varint(&mut reader)
            .await?
            .ok_or_else(|| car_err("empty file"))?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_SECTION)
            .ok_or_else(|| car_err("header too large"))?;
        let mut header = vec![0; len];
        reader.read_exact(&mut header).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                car_err("truncated header")
            } else {
                io_err(e)
            }
        })?;
        let header: Header = serde_ipld_dagcbor::from_slice(&header)
            .map_err(|e| car_err(format!("bad header: {e}")))?;
        if header.version != 1 {
            return Err(car_err(format!("unsupported version {}", header.version)));
        }
        let position = (varint::len(len as u64) + len) as u64;
        Ok(Self {
            reader,
            roots: header.roots,
            position,
        })
    }

    /// The roots named in the header.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// The next block, or `None` at the end of the archive.
    ///
    /// # Errors
    /// [`Error::Decode`] for a malformed section, [`Error::Corrupt`] for a block whose bytes
    /// do not match its CID, read failures.
    pub async fn next_block(&mut self) -> Result<Option<(Cid, Bytes)>> {
        Ok(self
            .next_block_at()
            .await?
            .map(|(cid, data, _)| (cid, data)))
    }

    /// As [`next_block`](Self::next_block), with the offset of the block's data in the
    /// archive.
    ///
    /// # Errors
    /// As [`next_block`](Self::next_block).
    pub async fn next_block_at(&mut self) -> Result<Option<(Cid, Bytes, u64)>> {
        let Some(len) = read_varint(&mut self.reader).await? else {
            return Ok(None);
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_SECTION)
            .ok_or_else(|| car_err(format!("section of {len} bytes is too large")))?;
        let mut section = vec![0; len];
        self.reader.read_exact(&mut section).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                car_err("truncated section")
            } else {
                io_err(e)
            }
        })?;
        let mut cursor = std::io::Cursor::new(&section[..]);
        let cid = Cid::read_bytes(&mut cursor).map_err(|e| car_err(format!("bad CID: {e}")))?;
        let start = usize::try_from(cursor.position()).map_err(car_err)?;
        let data = Bytes::copy_from_slice(&section[start..]);
        verify(&cid, &data)?;
        let head = varint::len(len as u64) as u64;
        let offset = self.position + head + start as u64;
        self.position += head + len as u64;
        Ok(Some((cid, data, offset)))
    }
}

/// Reads a section length; `None` at a clean end of input.
async fn read_varint<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<u64>> {
    let mut decoder = varint::Decoder::new();
    loop {
        let mut byte = [0u8];
        let n = reader.read(&mut byte).await.map_err(io_err)?;
        if n == 0 {
            return if decoder.bytes() == 0 {
                Ok(None)
            } else {
                Err(car_err("truncated length"))
            };
        }
        let value = decoder
            .feed(byte[0])
            .map_err(|_| car_err("length varint too long"))?;
        if let Some(value) = value {
            // Offsets are computed from the minimal encoding: a padded one would shift them.
            if varint::len(value) != decoder.bytes() {
                return Err(car_err("non-minimal length varint"));
            }
            return Ok(Some(value));
        }
    }
}

/// Writes a CAR with `root` and every block reachable from it, breadth first, each block
/// once. Returns the number of blocks written.
///
/// # Errors
/// Store failures (a missing block included), write failures, [`Error::Decode`] for a block
/// whose links cannot be read.
pub async fn export_car<W: AsyncWrite + Unpin>(
    store: &Arc<dyn BlockStore>,
    root: Cid,
    writer: W,
) -> Result<u64> {
    let mut car = CarWriter::new(writer, vec![root]).await?;
    let mut walk = Walk::new(store.as_ref(), [root]);
    let mut count = 0;
    while let Some(blocks) = walk.next_batch().await? {
        for (cid, data) in blocks {
            car.write(&cid, &data).await?;
            count += 1;
        }
    }
    car.finish().await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Codec, HashAlg};

    #[test]
    fn offsets_point_at_block_data() {
        futures::executor::block_on(async {
            let blocks: Vec<(Cid, Vec<u8>)> = [vec![1u8; 3], vec![2; 200], vec![3; 70_000]]
                .into_iter()
                .map(|d| (HashAlg::Blake3.cid(Codec::Raw, &d), d))
                .collect();
            let mut car = CarWriter::new(futures::io::Cursor::new(Vec::new()), vec![blocks[0].0])
                .await
                .unwrap();
            let mut offsets = Vec::new();
            for (cid, data) in &blocks {
                offsets.push(car.write(cid, data).await.unwrap());
            }
            let len = car.position();
            let bytes = car.finish().await.unwrap().into_inner();
            assert_eq!(len, bytes.len() as u64);
            for ((_, data), &at) in blocks.iter().zip(&offsets) {
                let at = usize::try_from(at).unwrap();
                assert_eq!(&bytes[at..at + data.len()], &data[..]);
            }
            let mut reader = CarReader::new(&bytes[..]).await.unwrap();
            for ((cid, data), &at) in blocks.iter().zip(&offsets) {
                let (c, d, o) = reader.next_block_at().await.unwrap().unwrap();
                assert_eq!((&c, &d[..], o), (cid, &data[..], at));
            }
            assert!(reader.next_block_at().await.unwrap().is_none());
        });
    }
}
