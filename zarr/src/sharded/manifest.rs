//! The root manifest of py-hamt's `ShardedZarrStore` (`sharded_zarr_v2`, and reading
//! `sharded_zarr_v1`).

use std::collections::BTreeMap;

use hamt::Cid;
use ipld_core::ipld::Ipld;

/// `manifest_version` of the current layout.
pub const V2: &str = "sharded_zarr_v2";
/// `manifest_version` of the legacy single-array layout.
pub const V1: &str = "sharded_zarr_v1";
/// `store_type` py-hamt writes.
pub(crate) const STORE_TYPE: &str = "py_hamt.sharded_zarr";

/// Where one array's chunks are: its geometry and one shard CID per `chunks_per_shard`
/// chunks in row-major order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArrayIndex {
    pub(crate) shape: Vec<u64>,
    pub(crate) chunk_shape: Vec<u64>,
    pub(crate) cps: u64,
    pub(crate) shard_cids: Vec<Option<Cid>>,
    pub(crate) chunks_per_dim: Vec<u64>,
    pub(crate) total_chunks: u64,
}

impl ArrayIndex {
    /// A new index with every shard unwritten.
    pub(crate) fn new(shape: Vec<u64>, chunk_shape: Vec<u64>, cps: u64) -> Result<Self, String> {
        let (chunks_per_dim, total_chunks) = geometry(&shape, &chunk_shape, cps)?;
        let shards = checked_shards(total_chunks, cps)?;
        Ok(Self {
            shape,
            chunk_shape,
            cps,
            shard_cids: vec![None; usize::try_from(shards).map_err(|e| e.to_string())?],
            chunks_per_dim,
            total_chunks,
        })
    }

    /// The row-major linear index of chunk `coords`, when they are inside the grid.
    pub(crate) fn linear(&self, coords: &[u64]) -> Option<u64> {
        if coords.len() != self.chunks_per_dim.len() {
            return None;
        }
        let mut linear = 0u64;
        let mut mult = 1u64;
        for (c, n) in coords.iter().zip(&self.chunks_per_dim).rev() {
            if c >= n {
                return None;
            }
            linear += c * mult;
            mult *= n;
        }
        Some(linear)
    }

    /// Where chunk `coords` lives, when inside the grid: (shard number, slot in the shard).
    pub(crate) fn locate(&self, coords: &[u64]) -> Option<(u64, u64)> {
        let linear = self.linear(coords)?;
        Some((linear / self.cps, linear % self.cps))
    }

    /// The stored CID of shard `shard`, when it is written.
    pub(crate) fn shard_cid(&self, shard: u64) -> Option<Cid> {
        usize::try_from(shard)
            .ok()
            .and_then(|i| self.shard_cids.get(i))
            .copied()
            .flatten()
    }

    /// The chunk coordinates of a linear index.
    pub(crate) fn coords(chunks_per_dim: &[u64], mut linear: u64) -> Vec<u64> {
        let mut coords = vec![0; chunks_per_dim.len()];
        for (c, n) in coords.iter_mut().zip(chunks_per_dim).rev() {
            *c = linear % n;
            linear /= n;
        }
        coords
    }

    /// Changes the shape: only `shard_cids`' length changes (callers remap shards when the
    /// grid changed anywhere but at its row-major tail).
    pub(crate) fn resize(&mut self, shape: Vec<u64>) -> Result<(), String> {
        let (chunks_per_dim, total_chunks) = geometry(&shape, &self.chunk_shape, self.cps)?;
        let shards =
            usize::try_from(checked_shards(total_chunks, self.cps)?).map_err(|e| e.to_string())?;
        self.shard_cids.resize(shards, None);
        self.shape = shape;
        self.chunks_per_dim = chunks_per_dim;
        self.total_chunks = total_chunks;
        Ok(())
    }

    fn to_ipld(&self) -> Ipld {
        let ints = |v: &[u64]| Ipld::List(v.iter().map(|&n| Ipld::Integer(n.into())).collect());
        Ipld::Map(BTreeMap::from([
            ("array_shape".into(), ints(&self.shape)),
            ("chunk_shape".into(), ints(&self.chunk_shape)),
            ("sharding_config".into(), sharding_config(self.cps)),
            (
                "shard_cids".into(),
                Ipld::List(
                    self.shard_cids
                        .iter()
                        .map(|c| c.map_or(Ipld::Null, Ipld::Link))
                        .collect(),
                ),
            ),
        ]))
    }

    fn from_ipld(path: &str, value: &Ipld, needs_order: bool) -> Result<Self, String> {
        let Ipld::Map(map) = value else {
            return Err("arrays must map string paths to dictionaries".into());
        };
        let shape = u64s(map.get("array_shape"), "array_shape")?;
        let chunk_shape = u64s(map.get("chunk_shape"), "chunk_shape")?;
        let config = match map.get("sharding_config") {
            Some(Ipld::Map(c)) => c,
            Some(_) => return Err("sharding_config is not a dictionary".into()),
            None => return Err("sharding_config has no chunks_per_shard".into()),
        };
        let cps = uint(config.get("chunks_per_shard"), "chunks_per_shard")?;
        if needs_order {
            match config.get("order") {
                None => {}
                Some(Ipld::String(o)) if o == "C" => {}
                Some(_) => return Err("only row-major ('C') shard ordering is supported".into()),
            }
        }
        let Some(Ipld::List(cids)) = map.get("shard_cids") else {
            return Err("shard_cids is not a list".into());
        };
        let (_, total) = geometry(&shape, &chunk_shape, cps)?;
        if num_shards(total, cps) != cids.len() as u64 {
            return Err(format!(
                "inconsistent number of shards for array '{path}': expected {}, found {}",
                num_shards(total, cps),
                cids.len()
            ));
        }
        let mut index = Self::new(shape, chunk_shape, cps)?;
        if cids.len() != index.shard_cids.len() {
            return Err(format!(
                "inconsistent number of shards for array '{path}': expected {}, found {}",
                index.shard_cids.len(),
                cids.len()
            ));
        }
        for (slot, c) in index.shard_cids.iter_mut().zip(cids) {
            *slot = match c {
                Ipld::Null => None,
                Ipld::Link(cid) => Some(*cid),
                _ => return Err(format!("shard_cids of '{path}' holds something not a CID")),
            };
        }
        Ok(index)
    }
}

pub(crate) fn num_shards(total_chunks: u64, cps: u64) -> u64 {
    if total_chunks == 0 {
        0
    } else {
        total_chunks.div_ceil(cps)
    }
}

/// Most shards one array may have: its shard list is held in memory, about 100 bytes a
/// shard with the cache's slot, so 1 Mi shards is about 100 MiB (and, at py-hamt's default of
/// 6250 chunks a shard, 6.5 × 10^9 chunks). A manifest or metadata document claiming more is
/// refused rather than allocated: a 300-byte document naming 2^24 one-chunk shards made the
/// store allocate over 2 GiB (found by fuzzing).
const MAX_SHARDS: u64 = 1 << 20;

/// Most chunks per shard: a shard is decoded whole in full mode (py-hamt's converter
/// defaults to 6250).
const MAX_CHUNKS_PER_SHARD: u64 = 1 << 20;

fn checked_shards(total_chunks: u64, cps: u64) -> Result<u64, String> {
    let shards = num_shards(total_chunks, cps);
    if shards > MAX_SHARDS {
        return Err(format!(
            "{shards} shards is more than the {MAX_SHARDS} supported"
        ));
    }
    Ok(shards)
}

fn geometry(shape: &[u64], chunk_shape: &[u64], cps: u64) -> Result<(Vec<u64>, u64), String> {
    if cps == 0 {
        return Err("chunks_per_shard must be a positive integer".into());
    }
    if cps > MAX_CHUNKS_PER_SHARD {
        return Err(format!(
            "chunks_per_shard {cps} is more than the {MAX_CHUNKS_PER_SHARD} supported"
        ));
    }
    if shape.len() != chunk_shape.len() {
        return Err("array_shape and chunk_shape must have the same rank".into());
    }
    if chunk_shape.contains(&0) {
        return Err("all chunk_shape dimensions must be positive".into());
    }
    let per_dim: Vec<u64> = shape
        .iter()
        .zip(chunk_shape)
        .map(|(s, c)| s.div_ceil(*c))
        .collect();
    let total = per_dim
        .iter()
        .try_fold(1u64, |acc, n| acc.checked_mul(*n))
        .ok_or("the chunk grid is too large")?;
    Ok((per_dim, total))
}

pub(crate) fn sharding_config(cps: u64) -> Ipld {
    Ipld::Map(BTreeMap::from([
        ("chunks_per_shard".into(), Ipld::Integer(cps.into())),
        ("order".into(), Ipld::String("C".into())),
    ]))
}

fn uint(v: Option<&Ipld>, what: &str) -> Result<u64, String> {
    match v {
        Some(Ipld::Integer(n)) => {
            u64::try_from(*n).map_err(|_| format!("{what} must be non-negative"))
        }
        _ => Err(format!("{what} is missing or not an integer")),
    }
}

fn u64s(v: Option<&Ipld>, what: &str) -> Result<Vec<u64>, String> {
    match v {
        Some(Ipld::List(items)) => items.iter().map(|i| uint(Some(i), what)).collect(),
        _ => Err(format!("{what} is missing or not a list")),
    }
}

/// DAG-CBOR's map key order, which py-hamt's decoded dicts keep: shorter first, then bytes.
pub(crate) fn canonical_order(keys: &mut [String]) {
    keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
}

/// Which layout a root uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `sharded_zarr_v1`: one array's chunks in one index; read only here.
    V1,
    /// `sharded_zarr_v2`: an index per array.
    V2,
}

/// A decoded root.
#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    pub(crate) version: Version,
    /// Top-level fields other than `metadata` and `arrays`, kept as loaded.
    pub(crate) extra: BTreeMap<String, Ipld>,
    pub(crate) metadata: BTreeMap<String, Cid>,
    pub(crate) arrays: BTreeMap<String, ArrayIndex>,
    /// Array paths in registration order (after a load: canonical order); the first is the
    /// primary array.
    pub(crate) order: Vec<String>,
    /// `chunks_per_shard` for newly registered arrays.
    pub(crate) default_cps: Option<u64>,
    /// v1: the array whose chunks the one index holds.
    pub(crate) v1_primary: Primary,
}

/// Which array a `sharded_zarr_v1` root's one index belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Primary {
    /// Not recorded and not (yet) inferred: chunk keys of any array but the coordinate ones
    /// route to the index, as py-hamt's legacy writer stored them. `inferable` when the
    /// manifest has no `primary_array_path` at all (py-hamt infers only then).
    Unknown {
        /// The manifest lacks the field, so the primary may be inferred.
        inferable: bool,
    },
    /// `chunks.primary_array_path` of the manifest.
    Recorded(String),
    /// The one array whose metadata matches the index's geometry.
    Inferred(String),
}

impl Primary {
    /// The primary array's path, when recorded or inferred (only its chunks then route to
    /// the index).
    pub(crate) fn exclusive(&self) -> Option<&str> {
        match self {
            Primary::Unknown { .. } => None,
            Primary::Recorded(p) | Primary::Inferred(p) => Some(p),
        }
    }

    /// True when the primary is recorded as the root array (`""`): only then are `c/…` keys
    /// (without a leading path) chunks of the index.
    pub(crate) fn is_recorded_root(&self) -> bool {
        matches!(self, Primary::Recorded(p) if p.is_empty())
    }
}

impl Manifest {
    /// An empty v2 manifest.
    pub(crate) fn new_v2(cps: u64) -> Self {
        let extra = BTreeMap::from([
            ("manifest_version".into(), Ipld::String(V2.into())),
            ("store_type".into(), Ipld::String(STORE_TYPE.into())),
            ("zarr_format".into(), Ipld::Integer(3)),
            ("sharding_config".into(), sharding_config(cps)),
        ]);
        Self {
            version: Version::V2,
            extra,
            metadata: BTreeMap::new(),
            arrays: BTreeMap::new(),
            order: Vec::new(),
            default_cps: Some(cps),
            v1_primary: Primary::Unknown { inferable: false },
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let root: Ipld = serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| format!("failed to decode root object: {e}"))?;
        let Ipld::Map(mut root) = root else {
            return Err("failed to decode root object: not a map".into());
        };
        let version = match root.get("manifest_version") {
            Some(Ipld::String(v)) if v == V2 => Version::V2,
            Some(Ipld::String(v)) if v == V1 => Version::V1,
            other => {
                return Err(format!(
                    "incompatible manifest version {other:?}: expected '{V1}' or '{V2}'"
                ));
            }
        };
        let metadata = match root.remove("metadata") {
            Some(Ipld::Map(m)) => m
                .into_iter()
                .map(|(k, v)| match v {
                    Ipld::Link(cid) => Ok((k, cid)),
                    Ipld::String(s) => s
                        .parse::<Cid>()
                        .map(|cid| (k.clone(), cid))
                        .map_err(|e| format!("metadata {k:?}: {e}")),
                    _ => Err(format!("metadata {k:?} is not a CID")),
                })
                .collect::<Result<BTreeMap<_, _>, _>>()?,
            _ => return Err("root has no 'metadata' map".into()),
        };
        let mut manifest = Self {
            version,
            extra: BTreeMap::new(),
            metadata,
            arrays: BTreeMap::new(),
            order: Vec::new(),
            default_cps: None,
            v1_primary: Primary::Unknown { inferable: false },
        };
        match version {
            Version::V2 => {
                let Some(Ipld::Map(arrays)) = root.remove("arrays") else {
                    return Err("root object is not a valid v2 dictionary with 'metadata' and 'arrays' keys".into());
                };
                for (path, value) in &arrays {
                    let norm = path.trim_matches('/').to_owned();
                    let index = ArrayIndex::from_ipld(&norm, value, true)?;
                    manifest.arrays.insert(norm, index);
                }
                let mut order: Vec<String> = manifest.arrays.keys().cloned().collect();
                canonical_order(&mut order);
                manifest.order = order;
                manifest.default_cps = match manifest.order.first() {
                    Some(first) => Some(manifest.arrays[first].cps),
                    None => match root.get("sharding_config") {
                        Some(Ipld::Map(c)) => {
                            uint(c.get("chunks_per_shard"), "chunks_per_shard").ok()
                        }
                        _ => None,
                    },
                };
            }
            Version::V1 => {
                let Some(Ipld::Map(chunks)) = root.get("chunks") else {
                    return Err("root object is not a valid dictionary with 'chunks' key".into());
                };
                let index = ArrayIndex::from_ipld("", &Ipld::Map(chunks.clone()), false)?;
                manifest.v1_primary = match chunks.get("primary_array_path") {
                    Some(Ipld::String(p)) => Primary::Recorded(p.trim_matches('/').to_owned()),
                    Some(_) => Primary::Unknown { inferable: false },
                    None => Primary::Unknown { inferable: true },
                };
                manifest.default_cps = Some(index.cps);
                manifest.arrays.insert(String::new(), index);
                manifest.order = vec![String::new()];
            }
        }
        manifest.extra = root;
        Ok(manifest)
    }

    /// The root block (v2).
    pub(crate) fn encode(&self) -> Result<Vec<u8>, String> {
        let mut root = self.extra.clone();
        root.insert(
            "metadata".into(),
            Ipld::Map(
                self.metadata
                    .iter()
                    .map(|(k, c)| (k.clone(), Ipld::Link(*c)))
                    .collect(),
            ),
        );
        root.insert(
            "arrays".into(),
            Ipld::Map(
                self.arrays
                    .iter()
                    .map(|(k, a)| (k.clone(), a.to_ipld()))
                    .collect(),
            ),
        );
        // serde_ipld_dagcbor writes maps in DAG-CBOR's canonical key order.
        serde_ipld_dagcbor::to_vec(&Ipld::Map(root)).map_err(|e| e.to_string())
    }

    /// Every array is inside a group (py-hamt's "grouped-only" v2 store).
    pub(crate) fn grouped_only(&self) -> bool {
        self.version == Version::V2
            && !self.arrays.is_empty()
            && self.arrays.keys().all(|p| p.contains('/'))
    }

    /// The one top-level group of a grouped-only store, if there is exactly one.
    pub(crate) fn default_group(&self) -> Option<&str> {
        if !self.grouped_only() {
            return None;
        }
        let mut groups = self.arrays.keys().filter_map(|p| p.split('/').next());
        let first = groups.next()?;
        groups.all(|g| g == first).then_some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_geometry_is_refused_not_allocated() {
        assert!(ArrayIndex::new(vec![u64::MAX], vec![1], 1).is_err());
        assert!(ArrayIndex::new(vec![1 << 40, 1 << 40], vec![1, 1], 1).is_err());
        assert!(ArrayIndex::new(vec![4], vec![0], 1).is_err());
        assert!(ArrayIndex::new(vec![4], vec![2], 0).is_err());
        assert!(ArrayIndex::new(vec![1], vec![1], 1 << 40).is_err());
        assert!(ArrayIndex::new(vec![4, 4], vec![2], 1).is_err());
        let ok = ArrayIndex::new(vec![10, 7], vec![3, 2], 5).unwrap();
        assert_eq!((ok.total_chunks, ok.shard_cids.len()), (16, 4));
        assert_eq!(ok.linear(&[3, 3]), Some(15));
        assert_eq!(ok.linear(&[4, 0]), None);
        assert_eq!(ArrayIndex::coords(&ok.chunks_per_dim, 15), [3, 3]);
    }
}
