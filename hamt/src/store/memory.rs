//! [`MemoryStore`]: blocks in memory, for tests, caches and short-lived maps.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;

use super::{BlockStore, Capabilities};
use crate::block::{Block, Codec, HashAlg, verify};
use crate::error::{Error, Result};
use crate::link::{FastHasher, Link};

/// A block store in memory: an index of CIDs behind a lock.
///
/// Blocks are verified when they are stored, so reads need no re-hashing. Small blocks
/// (HAMT values, usually) cost no allocation of their own: up to 22 bytes are kept in the
/// index's entry itself (a read copies them out, touching no other memory), and up to 256
/// bytes are copied into shared 64 KiB chunks, of which a read hands out a
/// reference-counted slice. The index takes 72 bytes a block plus 8 to 16 for its hash
/// table, which holds positions, not entries, so growing it copies 4 bytes a block.
/// Cloning gives another handle to the same blocks.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    blocks: Arc<RwLock<Blocks>>,
    hash_alg: HashAlg,
    verify_reads: bool,
}

#[derive(Debug, Default)]
struct Blocks {
    /// Every block, in the order first stored.
    entries: Vec<(Link, Stored)>,
    /// An open-addressing table over `entries`, at most half full, probed linearly from
    /// the CID's hash: a slot holds an entry's position plus one, or 0 when empty. A hash
    /// map of the entries themselves would take twice the memory at a million blocks, and
    /// hold two copies of them while it grows.
    slots: Vec<u32>,
    /// The chunk small blocks are being copied into.
    chunk: bytes::BytesMut,
}

/// Blocks up to this size are packed into chunks.
const PACK_MAX: usize = 256;
/// Size of a chunk of packed blocks.
const CHUNK: usize = 64 << 10;

/// A block as the map holds it: a tiny one in the entry itself (as small as a [`Bytes`]).
#[derive(Debug)]
enum Stored {
    Tiny { len: u8, data: [u8; TINY] },
    Bytes(Bytes),
}

/// Blocks up to this size are kept in their map entry.
const TINY: usize = 22;

impl Stored {
    fn bytes(&self) -> Bytes {
        match self {
            Stored::Tiny { len, data } => Bytes::copy_from_slice(&data[..usize::from(*len)]),
            Stored::Bytes(b) => b.clone(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Stored::Tiny { len, .. } => usize::from(*len),
            Stored::Bytes(b) => b.len(),
        }
    }
}

impl Blocks {
    fn hash(link: &Link) -> usize {
        use std::hash::BuildHasher as _;
        // Only the low bits index the table: truncation on 32-bit targets is harmless.
        #[allow(clippy::cast_possible_truncation)]
        let hash = std::hash::BuildHasherDefault::<FastHasher>::default().hash_one(link) as usize;
        hash
    }

    /// The slot holding `link`'s position, or else the empty slot where it belongs. The
    /// table must have slots.
    fn find(&self, link: &Link) -> std::result::Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut at = Self::hash(link) & mask;
        loop {
            match self.slots[at] {
                0 => return Err(at),
                n if self.entries[n as usize - 1].0 == *link => return Ok(at),
                _ => at = (at + 1) & mask,
            }
        }
    }

    fn lookup(&self, link: &Link) -> Option<&Stored> {
        if self.slots.is_empty() {
            return None;
        }
        let slot = self.find(link).ok()?;
        Some(&self.entries[self.slots[slot] as usize - 1].1)
    }

    /// Stores `stored` under `link`, replacing what was there.
    fn put(&mut self, link: Link, stored: Stored) {
        if (self.entries.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        match self.find(&link) {
            Ok(slot) => self.entries[self.slots[slot] as usize - 1].1 = stored,
            Err(slot) => {
                let position = position(self.entries.len() + 1);
                self.entries.push((link, stored));
                self.slots[slot] = position;
            }
        }
    }

    /// Doubles the table, placing every entry anew.
    fn grow(&mut self) {
        let len = (self.slots.len() * 2).max(64);
        let mask = len - 1;
        let mut slots = vec![0u32; len];
        for (i, (link, _)) in self.entries.iter().enumerate() {
            let mut at = Self::hash(link) & mask;
            while slots[at] != 0 {
                at = (at + 1) & mask;
            }
            slots[at] = position(i + 1);
        }
        self.slots = slots;
    }

    fn insert(&mut self, link: Link, data: Bytes) {
        if let Ok(len) = u8::try_from(data.len())
            && data.len() <= TINY
        {
            let mut tiny = [0; TINY];
            tiny[..data.len()].copy_from_slice(&data);
            self.put(link, Stored::Tiny { len, data: tiny });
            return;
        }
        let data = if data.len() <= PACK_MAX {
            if self.chunk.capacity() - self.chunk.len() < data.len() {
                self.chunk = bytes::BytesMut::with_capacity(CHUNK);
            }
            self.chunk.extend_from_slice(&data);
            self.chunk.split().freeze()
        } else {
            data
        };
        self.put(link, Stored::Bytes(data));
    }

    fn get(&self, link: &Link) -> Option<Bytes> {
        self.lookup(link).map(Stored::bytes)
    }

    /// [`get`](Self::get) for each link, in phases: first every probe's first slot, then the
    /// entries they name. The reads of one phase do not wait on each other, so their cache
    /// misses overlap instead of following one another.
    fn get_many(&self, links: &[Link]) -> Vec<Option<Bytes>> {
        if self.slots.is_empty() {
            return vec![None; links.len()];
        }
        let mask = self.slots.len() - 1;
        let first: Vec<u32> = links
            .iter()
            .map(|link| self.slots[Self::hash(link) & mask])
            .collect();
        links
            .iter()
            .zip(first)
            .map(|(link, slot)| match slot {
                0 => None,
                n => match &self.entries[n as usize - 1] {
                    (held, stored) if held == link => Some(stored.bytes()),
                    // Further along the probe.
                    _ => self.get(link),
                },
            })
            .collect()
    }
}

/// An entry's number (its position plus one) as a slot holds it.
fn position(n: usize) -> u32 {
    // Four billion blocks would take over 300 GB of index alone.
    u32::try_from(n).expect("a memory store holds fewer than 2^32 blocks")
}

impl MemoryStore {
    /// An empty store addressing blocks with BLAKE3.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store addressing new blocks with `hash_alg`.
    pub fn with_hash(hash_alg: HashAlg) -> Self {
        Self {
            hash_alg,
            ..Self::default()
        }
    }

    /// Re-hashes every block on `get`. Blocks are verified when stored, so this only matters
    /// for bytes placed with [`insert_unchecked`](Self::insert_unchecked).
    #[must_use]
    pub fn with_read_verification(mut self, verify_reads: bool) -> Self {
        self.verify_reads = verify_reads;
        self
    }

    /// How many blocks the store holds.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// True when the store holds no blocks.
    pub fn is_empty(&self) -> bool {
        self.read().entries.is_empty()
    }

    /// Total size of all blocks, in bytes.
    pub fn total_bytes(&self) -> usize {
        self.read().entries.iter().map(|(_, s)| s.len()).sum()
    }

    /// Every CID in the store, in no particular order.
    pub fn cids(&self) -> Vec<Cid> {
        self.read()
            .entries
            .iter()
            .map(|(l, _)| l.to_cid())
            .collect()
    }

    /// Stores bytes under a CID without checking them, so tests can simulate a corrupted
    /// backend.
    pub fn insert_unchecked(&self, cid: Cid, data: Bytes) {
        self.write().put(Link::from_cid(&cid), Stored::Bytes(data));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Blocks> {
        // A panic while holding the lock cannot leave the index half-written (an entry is
        // pushed before a slot names it), so a poisoned lock is safe to keep using.
        self.blocks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Blocks> {
        self.blocks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl BlockStore for MemoryStore {
    fn hash_alg(&self) -> HashAlg {
        self.hash_alg
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            write: true,
            ..Capabilities::default()
        }
    }

    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> Result<()> {
        verify(cid, &data)?;
        self.write().insert(Link::from_cid(cid), data);
        Ok(())
    }

    async fn get(&self, cid: &Cid) -> Result<Bytes> {
        let data = self.read().get(&Link::from_cid(cid));
        let data = data.ok_or(Error::NotFound { cid: *cid })?;
        if self.verify_reads {
            verify(cid, &data)?;
        }
        Ok(data)
    }

    async fn put(&self, codec: Codec, data: Bytes) -> Result<Cid> {
        let cid = self.hash_alg.cid(codec, &data);
        self.write().insert(Link::from_cid(&cid), data);
        Ok(cid)
    }

    async fn has(&self, cid: &Cid) -> Result<bool> {
        Ok(self.read().lookup(&Link::from_cid(cid)).is_some())
    }

    async fn put_many_keyed(&self, blocks: Vec<(Cid, Bytes)>) -> Result<()> {
        for (cid, data) in &blocks {
            verify(cid, data)?;
        }
        let mut map = self.write();
        for (cid, data) in blocks {
            map.insert(Link::from_cid(&cid), data);
        }
        Ok(())
    }

    async fn put_many(&self, blocks: Vec<(Codec, Bytes)>) -> Result<Vec<Cid>> {
        let hashed: Vec<(Cid, Bytes)> = blocks
            .into_iter()
            .map(|(codec, data)| (self.hash_alg.cid(codec, &data), data))
            .collect();
        let cids = hashed.iter().map(|(c, _)| *c).collect();
        let mut map = self.write();
        for (cid, data) in hashed {
            map.insert(Link::from_cid(&cid), data);
        }
        Ok(cids)
    }

    async fn put_blocks(&self, blocks: Vec<Block>) -> Result<()> {
        let mut map = self.write();
        for block in blocks {
            let (cid, data) = block.into_parts();
            map.insert(Link::from_cid(&cid), data);
        }
        Ok(())
    }

    async fn get_many(&self, cids: &[Cid]) -> Result<Vec<Bytes>> {
        let links: Vec<Link> = cids.iter().map(Link::from_cid).collect();
        let found = self.read().get_many(&links);
        cids.iter()
            .zip(found)
            .map(|(cid, data)| {
                let data = data.ok_or(Error::NotFound { cid: *cid })?;
                if self.verify_reads {
                    verify(cid, &data)?;
                }
                Ok(data)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_finds_every_block_across_its_growth() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = MemoryStore::new();
            let mut cids = Vec::new();
            for i in 0..5000u32 {
                let data = Bytes::from(i.to_le_bytes().repeat(1 + (i % 80) as usize));
                cids.push((store.put(Codec::Raw, data.clone()).await.unwrap(), data));
                // Storing a block again changes nothing.
                if i % 7 == 0 {
                    let (cid, data) = cids[(i / 2) as usize].clone();
                    store.put_keyed(&cid, data).await.unwrap();
                }
                assert_eq!(store.len(), cids.len());
            }
            for (cid, data) in &cids {
                assert_eq!(&store.get(cid).await.unwrap(), data);
                assert!(store.has(cid).await.unwrap());
            }
            // Batched reads find blocks past their first slot too.
            let all: Vec<Cid> = cids.iter().map(|(c, _)| *c).collect();
            let datas: Vec<Bytes> = cids.iter().map(|(_, d)| d.clone()).collect();
            assert_eq!(store.get_many(&all).await.unwrap(), datas);
            // Identity CIDs of counters hash poorly on their own: absent ones are not found.
            for i in 0..5000u32 {
                let absent = crate::block::identity_cid(Codec::Raw, &i.to_le_bytes()).unwrap();
                assert!(!store.has(&absent).await.unwrap());
                assert!(matches!(
                    store.get(&absent).await,
                    Err(Error::NotFound { .. })
                ));
                assert!(matches!(
                    store.get_many(&[all[0], absent]).await,
                    Err(Error::NotFound { cid }) if cid == absent
                ));
            }
            let mut listed = store.cids();
            listed.sort();
            let mut expected: Vec<Cid> = cids.iter().map(|(c, _)| *c).collect();
            expected.sort();
            assert_eq!(listed, expected);
        });
    }

    #[test]
    fn tiny_blocks_live_in_the_entry_and_read_back() {
        // The inline form costs the index nothing over a `Bytes`.
        assert_eq!(size_of::<Stored>(), size_of::<Bytes>());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = MemoryStore::new();
            for len in [0, 1, TINY, TINY + 1, PACK_MAX, PACK_MAX + 1] {
                let data = Bytes::from(vec![u8::try_from(len % 251).unwrap(); len]);
                let cid = store.put(Codec::Raw, data.clone()).await.unwrap();
                assert_eq!(store.get(&cid).await.unwrap(), data);
                assert_eq!(store.get_many(&[cid]).await.unwrap(), vec![data]);
            }
            assert_eq!(store.len(), 6);
            assert_eq!(
                store.total_bytes(),
                1 + TINY + TINY + 1 + PACK_MAX + PACK_MAX + 1
            );
        });
    }
}
