//! [`EmbeddedStore`]: a rust-ipfs node in this process as a [`BlockStore`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hamt::{BlockStore, Capabilities, Cid, Pinning, verify};
use rust_ipfs::builder::DefaultIpfsBuilder as IpfsBuilder;
use rust_ipfs::{Block, Ipfs, Multiaddr, PeerId};

use crate::error::Error;

/// The URL scheme: `ipfs-embedded:PATH` or `ipfs-embedded:mem`.
pub const SCHEME: &str = "ipfs-embedded";
/// How long a networked read waits for peers to send a missing block.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Options for an [`EmbeddedStore`]: [`EmbeddedStore::builder`] or
/// [`EmbeddedStore::builder_from_url`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct EmbeddedStoreBuilder {
    path: Option<PathBuf>,
    listen: Vec<String>,
    peers: Vec<String>,
    fetch_timeout: Option<Duration>,
}

impl EmbeddedStoreBuilder {
    /// Keeps the repo (blocks, pins, the node's key) in this directory; without it the node
    /// lives in memory.
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Listens on a multiaddress (`/ip4/127.0.0.1/tcp/0`); this turns networking on.
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen.push(addr.into());
        self
    }

    /// Connects to a peer (`/ip4/127.0.0.1/tcp/4001/p2p/12D3…`); this turns networking on.
    pub fn peer(mut self, addr: impl Into<String>) -> Self {
        self.peers.push(addr.into());
        self
    }

    /// How long a networked read waits for a missing block (default 30 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = Some(timeout);
        self
    }

    /// Starts the node. Offline (no listener, no bootstrap, reads from the local repo only)
    /// unless [`listen`](Self::listen) or [`peer`](Self::peer) was given.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process has the repo; [`Error::InvalidAddress`];
    /// [`Error::Io`]; [`Error::Node`] when the node fails to start or to dial a peer.
    pub async fn build(self) -> Result<EmbeddedStore, Error> {
        let parse = |a: &String| {
            a.parse::<Multiaddr>().map_err(|e| Error::InvalidAddress {
                addr: a.clone(),
                reason: e.to_string(),
            })
        };
        let listen: Vec<Multiaddr> = self.listen.iter().map(parse).collect::<Result<_, _>>()?;
        let peers: Vec<Multiaddr> = self.peers.iter().map(parse).collect::<Result<_, _>>()?;
        let mut peer_ids = Vec::new();
        for (addr, text) in peers.iter().zip(&self.peers) {
            let id = peer_of(addr).ok_or_else(|| Error::InvalidAddress {
                addr: text.clone(),
                reason: "a peer address must end in /p2p/PEER_ID".into(),
            })?;
            peer_ids.push(id);
        }
        let networked = !listen.is_empty() || !peers.is_empty();

        let mut builder = IpfsBuilder::new();
        if networked {
            builder = builder
                .with_default()
                .enable_tcp()
                .set_listening_addrs(listen);
        }
        if let Some(path) = &self.path {
            std::fs::create_dir_all(path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            builder = builder.set_path(path);
        }
        let ipfs = builder.start().await.map_err(|e| {
            let text = format!("{e:#}");
            match &self.path {
                // rust-ipfs reports its repo lock as "already being used by an IPFS instance".
                Some(path) if text.contains("already being used") => {
                    Error::Locked { path: path.clone() }
                }
                _ => Error::Node(text),
            }
        })?;
        for (addr, id) in peers.into_iter().zip(&peer_ids) {
            ipfs.add_peer((*id, vec![addr]))
                .await
                .map_err(|e| Error::Node(e.to_string()))?;
            ipfs.connect(*id)
                .await
                .map_err(|e| Error::Node(format!("cannot dial {id}: {e}")))?;
        }
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                peer_id: ipfs.keypair().public().to_peer_id(),
                ipfs: Mutex::new(Some(ipfs)),
                path: self.path,
                networked,
                peers: peer_ids,
                fetch_timeout: self.fetch_timeout.unwrap_or(DEFAULT_FETCH_TIMEOUT),
            }),
        })
    }
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        rust_ipfs::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

struct Inner {
    /// The node; taken by `shutdown`, or by the last clone's drop. No other handle is kept,
    /// so once it stops the repo (and its lock) is released.
    ipfs: Mutex<Option<Ipfs>>,
    peer_id: PeerId,
    path: Option<PathBuf>,
    networked: bool,
    peers: Vec<PeerId>,
    fetch_timeout: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let taken = self
            .ipfs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let (Some(ipfs), Ok(handle)) = (taken, tokio::runtime::Handle::try_current()) {
            handle.spawn(ipfs.exit_daemon());
        }
    }
}

/// An IPFS node (rust-ipfs) running in this process, as a [`BlockStore`]: no daemon to
/// install or run. Blocks get the same CIDs as in every other store; reads are verified.
///
/// Offline by default (no listener, no bootstrap: nothing leaves the process). With
/// [`listen`](EmbeddedStoreBuilder::listen) or [`peer`](EmbeddedStoreBuilder::peer) it joins
/// the given peers over TCP, and reads of blocks it lacks are fetched from them with bitswap
/// within a timeout. [`pin`](Self::pin) keeps a published root and everything under it through
/// [`gc`](Self::gc). Cloning is cheap; the node stops on [`shutdown`](Self::shutdown) or when
/// the last clone drops, releasing the repo lock.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .field("networked", &self.inner.networked)
            .finish_non_exhaustive()
    }
}

fn node_err(e: impl fmt::Display) -> hamt::Error {
    Error::Node(e.to_string()).into()
}

/// Waits (up to 10 s) until rust-ipfs's background tasks have let go of the repo lock;
/// false when they have not.
async fn wait_for_unlock(repo: &Path) -> bool {
    let lock = repo.join("repo_lock");
    for _ in 0..100 {
        let free = std::fs::OpenOptions::new()
            .write(true)
            .open(&lock)
            .is_ok_and(|f| f.try_lock().is_ok());
        if free {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

impl EmbeddedStore {
    /// Options for a node.
    pub fn builder() -> EmbeddedStoreBuilder {
        EmbeddedStoreBuilder::default()
    }

    /// Options from a URL: `ipfs-embedded:PATH` (a repo directory) or `ipfs-embedded:mem`.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`].
    pub fn builder_from_url(url: &str) -> Result<EmbeddedStoreBuilder, Error> {
        let rest = url
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix(':'))
            .filter(|r| !r.is_empty())
            .ok_or_else(|| Error::InvalidUrl {
                url: url.into(),
                reason: "expected ipfs-embedded:PATH or ipfs-embedded:mem".into(),
            })?;
        Ok(match rest {
            "mem" | "memory" => Self::builder(),
            path => Self::builder().path(path),
        })
    }

    /// Starts the node named by `url`.
    ///
    /// # Errors
    /// As [`builder_from_url`](Self::builder_from_url) and [`EmbeddedStoreBuilder::build`].
    pub async fn from_url(url: &str) -> Result<Self, Error> {
        Self::builder_from_url(url)?.build().await
    }

    /// The rust-ipfs node, for anything this crate does not wrap.
    ///
    /// # Errors
    /// [`Error::Node`] after [`shutdown`](Self::shutdown).
    pub fn ipfs(&self) -> Result<Ipfs, Error> {
        self.inner
            .ipfs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| Error::Node("the node was shut down".into()))
    }

    fn node(&self) -> hamt::Result<Ipfs> {
        Ok(self.ipfs()?)
    }

    /// The repo directory, or `None` for a node in memory.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// Addresses other nodes can dial (`…/p2p/PEER_ID`), when listening.
    ///
    /// # Errors
    /// [`Error::Node`].
    pub async fn addresses(&self) -> Result<Vec<String>, Error> {
        let id = self.peer_id();
        let addrs = self
            .ipfs()?
            .listening_addresses()
            .await
            .map_err(|e| Error::Node(e.to_string()))?;
        Ok(addrs.into_iter().map(|a| format!("{a}/p2p/{id}")).collect())
    }

    /// Deletes every block no pin covers; returns how many.
    ///
    /// # Errors
    /// Node failures.
    pub async fn gc(&self) -> hamt::Result<usize> {
        Ok(self.node()?.gc().await.map_err(node_err)?.len())
    }

    /// Stops the node and waits until the repo is released (another process may open it
    /// then); this store and its clones fail from then on.
    ///
    /// # Errors
    /// [`Error::Locked`] when the repo is still held 10 s later (a handle from
    /// [`ipfs`](Self::ipfs) kept alive, or a read still in flight).
    pub async fn shutdown(&self) -> Result<(), Error> {
        let taken = self
            .inner
            .ipfs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(ipfs) = taken {
            ipfs.exit_daemon().await;
            if let Some(path) = &self.inner.path
                && !wait_for_unlock(path).await
            {
                return Err(Error::Locked { path: path.clone() });
            }
        }
        Ok(())
    }
}

/// Recursive pins, which [`gc`](EmbeddedStore::gc) respects.
#[async_trait]
impl Pinning for EmbeddedStore {
    /// Pins `root` and every block under it (recursively), so [`gc`](EmbeddedStore::gc) keeps them.
    ///
    /// # Errors
    /// A block under `root` that is missing (and, offline, cannot be fetched).
    async fn pin(&self, root: &Cid) -> hamt::Result<()> {
        let node = self.node()?;
        let mut pin = node.insert_pin(root).recursive();
        if !self.inner.networked {
            pin = pin.local();
        }
        pin.await.map_err(node_err)
    }

    /// Removes the recursive pin on `root`.
    ///
    /// # Errors
    /// When `root` is not pinned.
    async fn unpin(&self, root: &Cid) -> hamt::Result<()> {
        self.node()?
            .remove_pin(root)
            .recursive()
            .await
            .map_err(node_err)
    }

    /// True when `root` is pinned (directly, recursively or under another pin).
    ///
    /// # Errors
    /// Node failures.
    async fn is_pinned(&self, root: &Cid) -> hamt::Result<bool> {
        self.node()?.is_pinned(root).await.map_err(node_err)
    }
}

#[async_trait]
impl BlockStore for EmbeddedStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            write: true,
            durable: self.inner.path.is_some(),
            pin: true,
            ..Capabilities::default()
        }
    }

    fn pinning(&self) -> Option<&dyn Pinning> {
        Some(self)
    }

    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> hamt::Result<()> {
        verify(cid, &data)?;
        let block = Block::new_unchecked(*cid, data);
        self.node()?.put_block(&block).await.map_err(node_err)?;
        Ok(())
    }

    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        let node = self.node()?;
        let local = node.repo().contains(cid).await.map_err(node_err)?;
        if !local && !self.inner.networked {
            return Err(hamt::Error::NotFound { cid: *cid });
        }
        let mut get = node.get_block(cid);
        if local {
            get = get.local();
        } else {
            get = get
                .timeout(self.inner.fetch_timeout)
                .providers(self.inner.peers.clone());
        }
        // A block no peer sent in time may exist elsewhere: a temporary failure, not NotFound.
        let block = get.await.map_err(|e| {
            if local {
                node_err(e)
            } else {
                hamt::Error::Backend {
                    store: "ipfs-embedded",
                    temporary: true,
                    source: format!("no peer sent {cid}: {e}").into(),
                }
            }
        })?;
        let (_, data) = block.into_inner();
        verify(cid, &data)?;
        Ok(data)
    }

    async fn has(&self, cid: &Cid) -> hamt::Result<bool> {
        self.node()?.repo().contains(cid).await.map_err(node_err)
    }
}
