//! Writing a [`ShardedStore`] as py-hamt's `set`, `set_pointer`, `delete` and `flush` do:
//! metadata documents register arrays and synthesize parent groups, chunks go into their
//! shard, and flushing saves changed shards and then the root.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use hamt::{Cid, Codec};

use super::cache::ShardKey;
use super::manifest::{ArrayIndex, Version};
use super::read::Slot;
use super::route::{self, Route};
use super::shard::{self, Entries};
use super::{ShardedStore, State, pyjson};
use crate::error::{Error, Result};
use crate::metadata;

/// Shards saved at once by [`ShardedStore::flush`].
const FLUSH_CONCURRENCY: usize = 8;
/// Synthesized parent group document, byte for byte as py-hamt writes it.
const GROUP_DOC: &[u8] = br#"{"zarr_format": 3, "node_type": "group", "attributes": {}}"#;
/// The same for Zarr v2 (`.zgroup`).
const V2_GROUP_DOC: &[u8] = br#"{"zarr_format": 2}"#;

impl ShardedStore {
    /// Where `key` goes, as the manifest stands now.
    fn route(&self, key: &str) -> Route {
        route::route_of(&self.state().manifest, key)
    }

    /// Fails unless `path` (of a chunk key `key`) is a registered array.
    fn check_registered(&self, key: &str, route: &Route) -> Result<()> {
        match route {
            Route::Chunk { path, .. } if !self.state().manifest.arrays.contains_key(path) => {
                Err(Error::Layout {
                    reason: format!("no array metadata registered for chunk {key:?}"),
                })
            }
            _ => Ok(()),
        }
    }

    /// Sets `key` to `value` as py-hamt's `set` does: metadata documents register arrays
    /// (and resize them), missing parent groups are synthesized, chunks go into their shard;
    /// chunk keys outside their array's grid are ignored.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; [`Error::Layout`] for an array outside any group after a root
    /// group write (py-hamt's rule), a chunk of an unregistered array, a changed chunk
    /// shape; store failures.
    pub async fn set_value(&self, key: &str, value: impl Into<Bytes>) -> Result<()> {
        self.check_writable()?;
        let mut raw: Bytes = value.into();
        if !metadata::is_metadata_key(key) {
            // Chunks upload before the store is locked, so many can be in flight.
            let route = self.route(key);
            if let Route::Chunk { .. } = &route {
                self.check_registered(key, &route)?;
                let cid = self.blocks.put(Codec::Raw, raw).await?;
                let _w = self.writer.lock().await;
                let route = self.route(key);
                return self.set_pointer_cid(key, route, cid).await;
            }
        }
        let _w = self.writer.lock().await;
        if self.version() == Version::V2 {
            raw = self.strip_root_consolidated(key, raw);
            self.check_group(key, &raw)?;
        }
        self.register_metadata(key, &raw).await?;
        self.ensure_parent_groups(key).await?;
        let route = self.route(key);
        if route == Route::Invalid {
            return Ok(());
        }
        self.check_registered(key, &route)?;
        let cid = self.blocks.put(Codec::Raw, raw).await?;
        self.set_pointer_cid(key, route, cid).await
    }

    /// Links `key` to an existing block by CID without copying it (py-hamt's
    /// `set_pointer`): grafts a chunk, or a metadata document (which registers its array).
    ///
    /// # Errors
    /// As [`set_value`](Self::set_value), without the group rule.
    pub async fn set_pointer(&self, key: &str, cid: Cid) -> Result<()> {
        self.check_writable()?;
        let _w = self.writer.lock().await;
        let mut cid = cid;
        if self.route(key) == Route::Meta && self.version() == Version::V2 {
            let root_doc = key == "zarr.json" && self.state().manifest.grouped_only();
            let registers = route::array_path_of_metadata_key(key).is_some();
            if root_doc || registers {
                let raw = hamt::unixfs::read_value(&self.blocks, &cid).await?;
                if root_doc {
                    let stripped = self.strip_root_consolidated(key, raw.clone());
                    if stripped != raw {
                        cid = self.blocks.put(Codec::Raw, stripped).await?;
                    }
                }
                self.register_metadata(key, &raw).await?;
            }
            self.ensure_parent_groups(key).await?;
        }
        let route = self.route(key);
        self.set_pointer_cid(key, route, cid).await
    }

    /// Points `key` (routed to `route`) at `cid`: a manifest entry, or a shard entry.
    async fn set_pointer_cid(&self, key: &str, route: Route, cid: Cid) -> Result<()> {
        match route {
            Route::Invalid => Ok(()),
            Route::Meta => {
                let mut st = self.state();
                st.manifest.metadata.insert(key.to_owned(), cid);
                st.dirty = true;
                Ok(())
            }
            Route::Chunk { path, coords } => {
                let slot = {
                    let st = self.state();
                    let index = st.manifest.arrays.get(&path).ok_or_else(|| Error::Layout {
                        reason: format!("no array metadata registered for chunk {key:?}"),
                    })?;
                    Slot::of(index, &path, &coords)
                };
                let Some(slot) = slot else { return Ok(()) };
                self.set_slot(key, slot, Some(cid)).await
            }
        }
    }

    /// Sets a shard entry, and drops a legacy metadata entry of the same key (its CID would
    /// otherwise stay referenced, and resurface once the entry is cleared).
    async fn set_slot(&self, key: &str, slot: Slot, value: Option<Cid>) -> Result<()> {
        let loaded = self.load_shard(&slot.key, slot.shard_cid, slot.cps).await?;
        let mut st = self.state();
        set_entry(&mut st, slot.key, loaded, slot.index, value);
        if st.manifest.metadata.remove(key).is_some() {
            st.dirty = true;
        }
        Ok(())
    }

    /// The root `zarr.json` of a grouped store without `consolidated_metadata`, re-serialized
    /// as Python's `json.dumps` writes it (py-hamt drops it: it would go stale).
    fn strip_root_consolidated(&self, key: &str, raw: Bytes) -> Bytes {
        if key != "zarr.json" || !self.state().manifest.grouped_only() {
            return raw;
        }
        let Some(mut meta) = metadata::json_object(&raw) else {
            return raw;
        };
        if meta.get("node_type").and_then(serde_json::Value::as_str) != Some("group")
            || !meta.contains_key("consolidated_metadata")
        {
            return raw;
        }
        meta.shift_remove("consolidated_metadata");
        Bytes::from(pyjson::dumps(&serde_json::Value::Object(meta)))
    }

    /// py-hamt's rule for v2 writes: a top-level array written right after the root group's
    /// document is refused (the dataset must go into a group).
    fn check_group(&self, key: &str, raw: &[u8]) -> Result<()> {
        let Some(meta) = metadata::json_object(raw) else {
            return Ok(());
        };
        let geometry = route::array_geometry(&meta);
        let mut st = self.state();
        if let Some(group) = route::group_path_of_metadata_key(key)
            && geometry.is_none()
        {
            st.group_pending = group.is_empty();
            return Ok(());
        }
        let (Some(path), Some(_)) = (route::array_path_of_metadata_key(key), geometry) else {
            return Ok(());
        };
        if path.trim_matches('/').contains('/') {
            st.group_pending = false;
            return Ok(());
        }
        if st.group_pending {
            st.group_pending = false;
            return Err(Error::Layout {
                reason: "sharded_zarr_v2 writes require an explicit Zarr group: write the dataset into a group (xarray: to_zarr(..., group='0'))".into(),
            });
        }
        Ok(())
    }

    /// Registers (or resizes) the array a metadata document describes.
    async fn register_metadata(&self, key: &str, raw: &[u8]) -> Result<()> {
        if self.version() != Version::V2 {
            return Ok(());
        }
        let Some(path) = route::array_path_of_metadata_key(key) else {
            return Ok(());
        };
        let Some((shape, chunks)) = metadata::json_object(raw)
            .as_ref()
            .and_then(route::array_geometry)
        else {
            return Ok(());
        };
        let path = path.trim_matches('/').to_owned();
        let existing = self
            .state()
            .manifest
            .arrays
            .get(&path)
            .map(|a| (a.shape.clone(), a.chunk_shape.clone()));
        match existing {
            None => {
                let mut st = self.state();
                let cps = st.manifest.default_cps.ok_or_else(|| Error::Layout {
                    reason: "the store has no default chunks_per_shard".into(),
                })?;
                let index = ArrayIndex::new(shape, chunks, cps)
                    .map_err(|reason| Error::Layout { reason })?;
                st.manifest.arrays.insert(path.clone(), index);
                st.manifest.order.push(path);
                st.dirty = true;
                Ok(())
            }
            Some((_, old_chunks)) if old_chunks != chunks => Err(Error::Layout {
                reason: format!("cannot change chunk_shape for existing array index '{path}'"),
            }),
            Some((old_shape, _)) if old_shape != shape => self.resize_index(&path, shape).await,
            Some(_) => Ok(()),
        }
    }

    /// Writes the group documents missing above the array or group `key` describes (the
    /// root's, then each level's), as py-hamt synthesizes them.
    async fn ensure_parent_groups(&self, key: &str) -> Result<()> {
        if self.version() != Version::V2 {
            return Ok(());
        }
        let Some(path) = route::array_path_of_metadata_key(key) else {
            return Ok(());
        };
        let zarr_v2 = key.ends_with(".zarray");
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let parents =
            std::iter::once(String::new()).chain((1..parts.len()).map(|i| parts[..i].join("/")));
        for parent in parents {
            let doc_key = match (parent.is_empty(), zarr_v2) {
                (true, true) => ".zgroup".to_owned(),
                (true, false) => "zarr.json".to_owned(),
                (false, true) => format!("{parent}/.zgroup"),
                (false, false) => format!("{parent}/zarr.json"),
            };
            if self.state().manifest.metadata.contains_key(&doc_key) {
                continue;
            }
            let doc = if zarr_v2 { V2_GROUP_DOC } else { GROUP_DOC };
            let cid = self.blocks.put(Codec::Raw, Bytes::from_static(doc)).await?;
            let mut st = self.state();
            st.manifest.metadata.insert(doc_key, cid);
            st.dirty = true;
        }
        Ok(())
    }

    /// Removes `key` (a missing key is not an error).
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; store failures.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.check_writable()?;
        let _w = self.writer.lock().await;
        match self.route(key) {
            Route::Invalid => {}
            Route::Meta => {
                let mut st = self.state();
                if st.manifest.metadata.remove(key).is_some() {
                    st.dirty = true;
                }
            }
            Route::Chunk { path, coords } => {
                let slot = {
                    let st = self.state();
                    let index = st.manifest.arrays.get(&path);
                    index.and_then(|index| Slot::of(index, &path, &coords))
                };
                if let Some(slot) = slot {
                    self.set_slot(key, slot, None).await?;
                } else {
                    let mut st = self.state();
                    if st.manifest.metadata.remove(key).is_some() {
                        st.dirty = true;
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes a group or array and everything under it (`""`: everything).
    ///
    /// # Errors
    /// [`Error::ReadOnly`].
    pub async fn delete_dir(&self, prefix: &str) -> Result<()> {
        self.check_writable()?;
        let _w = self.writer.lock().await;
        let p = prefix.trim_matches('/');
        let mut st = self.state();
        if p.is_empty() {
            st.manifest.metadata.clear();
            st.manifest.arrays.clear();
            st.manifest.order.clear();
            st.cache.retain(|_| false);
            st.latched = false;
            st.sparse_reads.clear();
        } else {
            let under = format!("{p}/");
            let inside = |a: &str| a == p || a.starts_with(&under);
            st.manifest.metadata.retain(|k, _| !k.starts_with(&under));
            st.manifest.arrays.retain(|a, _| !inside(a));
            st.manifest.order.retain(|a| !inside(a));
            st.cache.retain(|(a, _)| !inside(a));
        }
        st.dirty = true;
        Ok(())
    }

    /// Saves every changed shard (a few at once), then the root if anything changed, and
    /// returns the root CID.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] for a v1 root with changes; store failures.
    pub async fn flush(&self) -> Result<Cid> {
        let _w = self.writer.lock().await;
        let dirty = self.state().cache.dirty();
        let saved: Vec<(ShardKey, Cid)> = futures::stream::iter(dirty)
            .map(|(key, entries)| async move {
                let bytes = Bytes::from(shard::encode(&entries));
                let cid = self.blocks.put(Codec::DagCbor, bytes).await?;
                Ok::<_, Error>((key, cid))
            })
            .buffer_unordered(FLUSH_CONCURRENCY)
            .try_collect()
            .await?;
        let bytes = {
            let mut st = self.state();
            for (key, cid) in saved {
                st.cache.mark_clean(&key);
                if let Some(index) = st.manifest.arrays.get_mut(&key.0)
                    && let Some(slot) = usize::try_from(key.1)
                        .ok()
                        .and_then(|i| index.shard_cids.get_mut(i))
                    && *slot != Some(cid)
                {
                    *slot = Some(cid);
                    st.dirty = true;
                }
            }
            if !st.dirty {
                return st.root.ok_or_else(|| Error::Layout {
                    reason: "the store has no root".into(),
                });
            }
            if st.manifest.version != Version::V2 {
                return Err(Error::ReadOnly);
            }
            st.manifest
                .encode()
                .map_err(|reason| Error::Manifest { reason })?
        };
        let root = self.blocks.put(Codec::DagCbor, Bytes::from(bytes)).await?;
        let mut st = self.state();
        st.root = Some(root);
        st.dirty = false;
        Ok(root)
    }
}

/// Sets one entry of a shard, marking it dirty when it changes. The shard may have left the
/// cache since `loaded` was read (only clean shards are evicted, so `loaded` is then still
/// its content); it goes back in, dirty, so no write is lost.
pub(super) fn set_entry(
    st: &mut State,
    key: ShardKey,
    loaded: Arc<Entries>,
    slot: u64,
    value: Option<Cid>,
) {
    let current = st.cache.get(&key).unwrap_or(loaded);
    let Some(slot) = usize::try_from(slot).ok().filter(|&s| s < current.len()) else {
        return;
    };
    if current[slot] != value {
        let mut entries = (*current).clone();
        entries[slot] = value;
        st.cache.insert(key, Arc::new(entries), true);
    }
}
