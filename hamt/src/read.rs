//! The reads [`Hamt`](crate::Hamt) and [`HamtReader`](crate::HamtReader) share, written once:
//! each handle is a root node and a [`Loader`], and hands both to [`Reads`].

use bytes::Bytes;
use cid::Cid;
use futures::{Stream, TryStreamExt as _};
use serde::de::DeserializeOwned;

use crate::cache::Loader;
use crate::error::{Error, Result};
use crate::link::Link;
use crate::node::Node;
use crate::store::SubtreeFetch;
use crate::tree::{self, NodeRef, Stats};

/// A tree to read: its root node (in memory, possibly with dirty children), the root's CID
/// while the tree is as stored, and the loader of the stored nodes below.
#[derive(Clone, Copy)]
pub(crate) struct Reads<'a> {
    root: &'a Node,
    root_cid: Option<Cid>,
    loader: &'a Loader,
}

impl<'a> Reads<'a> {
    pub(crate) fn new(root: &'a Node, root_cid: Option<Cid>, loader: &'a Loader) -> Self {
        Self {
            root,
            root_cid,
            loader,
        }
    }

    /// The store's subtree fetch and the root it can be asked about, for a tree as stored.
    fn fetch(self) -> Option<(Cid, &'a dyn SubtreeFetch)> {
        let root = self.root_cid?;
        Some((root, self.loader.store.subtree_fetch()?))
    }

    fn tree(self) -> NodeRef<'a> {
        NodeRef::Mem(self.root)
    }

    /// The value bytes of `key`; see [`Hamt::get`](crate::Hamt::get).
    pub(crate) async fn get(self, key: &str) -> Result<Option<Bytes>> {
        // A cold key over a store that can fetch its path at once: one request, then the
        // lookup below runs from memory.
        let prefetched = match self.fetch() {
            Some((root, fetch))
                if tree::resolvable_from_memory(self.tree(), self.loader, key).is_none() =>
            {
                self.fetch_path(root, fetch, key).await
            }
            _ => None,
        };
        // An inlined value is copied out of its node; only a block needs a CID.
        let found =
            tree::lookup_with(
                self.tree(),
                self.loader,
                key,
                |cid| match crate::link::inline_bytes(cid) {
                    Some(data) => Ok(Bytes::copy_from_slice(data)),
                    None => {
                        Err(Link::from_bytes(cid)
                            .expect("bucket CIDs are validated on construction"))
                    }
                },
            )
            .await?;
        match found {
            None => Ok(None),
            Some(Ok(data)) => Ok(Some(data)),
            Some(Err(link)) => {
                let cid = link.to_cid();
                if let Some((_, data)) = prefetched.filter(|(c, _)| *c == cid) {
                    return Ok(Some(data));
                }
                Ok(Some(
                    crate::unixfs::read_value(&self.loader.store, &cid).await?,
                ))
            }
        }
    }

    /// Fetches the blocks on `key`'s path in one request: its nodes go into the cache, and
    /// the last raw block (the value, when the path reaches one) comes back. Any failure
    /// leaves the lookup to fetch block by block, as without a path.
    async fn fetch_path(
        self,
        root: Cid,
        fetch: &dyn SubtreeFetch,
        key: &str,
    ) -> Option<(Cid, Bytes)> {
        use futures::StreamExt as _;
        let mut blocks = fetch.path(root, key)?;
        let mut value = None;
        while let Some(block) = blocks.next().await {
            let Ok(block) = block else {
                break;
            };
            let (cid, data) = block.into_parts();
            if cid.codec() == crate::block::Codec::DagCbor.code() {
                // A block that is not a node is the value's, or none of ours.
                if self.loader.insert_block(&cid, data.clone()).is_err() {
                    value = Some((cid, data));
                }
            } else if value.is_none() && cid.codec() == crate::block::Codec::Raw.code() {
                value = Some((cid, data));
            }
        }
        value
    }

    /// The values of many keys, in the order of `keys`: the lookups walk the tree together,
    /// one batch of node fetches per level, then the values are fetched in one batch.
    pub(crate) async fn get_many(self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let links = tree::lookup_many(self.tree(), self.loader, keys).await?;
        let mut fetch: Vec<Cid> = Vec::new();
        let mut files: Vec<Cid> = Vec::new();
        let cids: Vec<Option<Cid>> = links.iter().map(|l| l.as_ref().map(Link::to_cid)).collect();
        for cid in cids.iter().flatten() {
            if crate::block::inline_data(cid).is_some() {
                continue;
            }
            if cid.codec() == crate::block::Codec::DagPb.code() {
                files.push(*cid);
            } else {
                fetch.push(*cid);
            }
        }
        fetch.sort_unstable();
        fetch.dedup();
        files.sort_unstable();
        files.dedup();
        let blocks = self.loader.store.get_many(&fetch).await?;
        let mut values: crate::link::FastMap<Cid, Bytes> = fetch.into_iter().zip(blocks).collect();
        {
            use futures::{StreamExt as _, TryStreamExt as _};
            let store = &self.loader.store;
            let read: Vec<(Cid, Bytes)> = futures::stream::iter(files)
                .map(|cid| async move {
                    Ok::<_, Error>((cid, crate::unixfs::read_value(store, &cid).await?))
                })
                .buffer_unordered(store.concurrency().max(1))
                .try_collect()
                .await?;
            values.extend(read);
        }
        Ok(cids
            .into_iter()
            .map(|cid| {
                let cid = cid?;
                match crate::block::inline_data(&cid) {
                    Some(data) => Some(Bytes::copy_from_slice(data)),
                    None => values.get(&cid).cloned(),
                }
            })
            .collect())
    }

    /// The CIDs of the values of many keys, as [`get_many`](Self::get_many) walks to them.
    pub(crate) async fn get_pointers(self, keys: &[&str]) -> Result<Vec<Option<Cid>>> {
        Ok(tree::lookup_many(self.tree(), self.loader, keys)
            .await?
            .into_iter()
            .map(|l| l.as_ref().map(Link::to_cid))
            .collect())
    }

    /// The CIDs of the nodes from the root to the one holding `key`, and the value's CID.
    pub(crate) async fn path(self, key: &str) -> Result<Option<(Vec<Cid>, Cid)>> {
        let Some(root) = self.root_cid else {
            return Err(Error::NotSupported {
                store: "hamt",
                operation: "paths through unflushed changes",
            });
        };
        Ok(tree::lookup_path(self.tree(), self.loader, key)
            .await?
            .map(|(links, value)| {
                let mut nodes = Vec::with_capacity(links.len() + 1);
                nodes.push(root);
                nodes.extend(links.iter().map(Link::to_cid));
                (nodes, value.to_cid())
            }))
    }

    /// The value of `key`, decoded from DAG-CBOR.
    pub(crate) async fn get_cbor<T: DeserializeOwned>(self, key: &str) -> Result<Option<T>> {
        self.get(key)
            .await?
            .map(|b| {
                serde_ipld_dagcbor::from_slice(&b)
                    .map_err(|e| Error::decode("DAG-CBOR value", None, e))
            })
            .transpose()
    }

    /// The CID of the value block of `key`.
    pub(crate) async fn get_pointer(self, key: &str) -> Result<Option<Cid>> {
        tree::lookup(self.tree(), self.loader, key).await
    }

    /// True when `key` is in the map.
    pub(crate) async fn contains_key(self, key: &str) -> Result<bool> {
        Ok(self.get_pointer(key).await?.is_some())
    }

    /// Every key, in py-hamt's order.
    pub(crate) fn keys(self) -> impl Stream<Item = Result<String>> + 'a {
        tree::entries(self.tree(), self.loader).map_ok(|e| e.key.into_string())
    }

    /// Every key with the CID of its value.
    pub(crate) fn pointers(self) -> impl Stream<Item = Result<(String, Cid)>> + 'a {
        tree::pointers(self.tree(), self.loader)
    }

    /// Every key with its value bytes: over a store that fetches subtrees, from one stream
    /// of the whole tree (in its depth-first order); otherwise block by block, values in
    /// batches.
    pub(crate) fn values(self) -> impl Stream<Item = Result<(String, Bytes)>> + 'a {
        match self.fetch() {
            Some((root, fetch)) => {
                futures::future::Either::Left(tree::subtree_values(root, fetch, self.loader))
            }
            None => futures::future::Either::Right(tree::values(self.tree(), self.loader)),
        }
    }

    /// Keys, nodes and levels.
    pub(crate) async fn stats(self) -> Result<Stats> {
        tree::stats(self.tree(), self.loader).await
    }
}
