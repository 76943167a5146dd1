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
use crate::tree::{self, NodeRef, Stats};

/// A tree to read: its root node (in memory, possibly with dirty children) and the loader
/// of the stored nodes below.
#[derive(Clone, Copy)]
pub(crate) struct Reads<'a> {
    root: &'a Node,
    loader: &'a Loader,
}

impl<'a> Reads<'a> {
    pub(crate) fn new(root: &'a Node, loader: &'a Loader) -> Self {
        Self { root, loader }
    }

    fn tree(self) -> NodeRef<'a> {
        NodeRef::Mem(self.root)
    }

    /// The value bytes of `key`; see [`Hamt::get`](crate::Hamt::get).
    pub(crate) async fn get(self, key: &str) -> Result<Option<Bytes>> {
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
                Ok(Some(
                    crate::unixfs::read_value(&self.loader.store, &cid).await?,
                ))
            }
        }
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

    /// Every key with its value bytes.
    pub(crate) fn values(self) -> impl Stream<Item = Result<(String, Bytes)>> + 'a {
        tree::values(self.tree(), self.loader)
    }

    /// Keys, nodes and levels.
    pub(crate) async fn stats(self) -> Result<Stats> {
        tree::stats(self.tree(), self.loader).await
    }
}
