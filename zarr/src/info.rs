//! A summary of the groups and arrays of a dataset, from its `zarr.json` documents.

use std::fmt;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::metadata;
use crate::source::Source;

/// One group or array of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    /// The node's path (`""` for the root).
    pub path: String,
    /// Array details, or `None` for a group.
    pub array: Option<ArrayInfo>,
}

/// The shape and layout of an array.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayInfo {
    /// The array's shape.
    pub shape: Vec<u64>,
    /// The data type, as written in the metadata (`"float32"`, or a JSON object).
    pub data_type: String,
    /// The chunk grid's chunk shape (a shard's shape under the sharding codec).
    pub chunk_shape: Vec<u64>,
    /// The inner chunk shape when the array uses the `sharding_indexed` codec.
    pub inner_chunk_shape: Option<Vec<u64>>,
    /// Codec names, outermost last.
    pub codecs: Vec<String>,
    /// Dimension names, when given.
    pub dimension_names: Option<Vec<String>>,
    /// Chunks (or shards) the grid has.
    pub grid_chunks: u64,
    /// Chunks (or shards) actually stored; the rest read as the fill value.
    pub stored_chunks: u64,
}

/// The groups and arrays of a dataset, sorted by path.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DatasetInfo {
    /// Every node.
    pub nodes: Vec<NodeInfo>,
}

/// Reads every `zarr.json` of the dataset in `store` (a [`HamtStore`](crate::HamtStore), a
/// [`ShardedStore`](crate::ShardedStore) or a [`Dataset`](crate::Dataset)).
///
/// # Errors
/// [`Error::Metadata`] for metadata that is not Zarr v3; [`Error::Encrypted`] for metadata
/// that is ciphertext (an encrypted dataset opened without its key); store failures.
pub async fn dataset_info<S: Source + ?Sized>(store: &S) -> Result<DatasetInfo> {
    let keys = store.keys_with_prefix("").await?;
    let mut nodes = Vec::new();
    for key in keys.iter().filter(|k| metadata::is_v3_document(k)) {
        let path = key.strip_suffix("zarr.json").unwrap_or_default();
        let bytes = store.get_value(key).await?.unwrap_or_default();
        let bad = |reason: String| Error::Metadata {
            key: key.clone(),
            reason,
        };
        let meta = metadata::parse(key, &bytes)?;
        if meta.get("zarr_format").and_then(Value::as_u64) != Some(3) {
            return Err(bad("not \"zarr_format\": 3".into()));
        }
        let array = match meta.get("node_type").and_then(Value::as_str) {
            Some("group") => None,
            Some("array") => {
                let stored = keys
                    .iter()
                    .filter(|k| k.starts_with(path) && *k != key)
                    .count() as u64;
                Some(array_info(&meta, stored).map_err(bad)?)
            }
            _ => return Err(bad("node_type is neither \"group\" nor \"array\"".into())),
        };
        nodes.push(NodeInfo {
            path: path.trim_end_matches('/').to_owned(),
            array,
        });
    }
    nodes.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(DatasetInfo { nodes })
}

fn u64s(v: Option<&Value>, what: &str) -> Result<Vec<u64>, String> {
    v.and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<_>>>())
        .ok_or_else(|| format!("{what} is not a list of integers"))
}

fn array_info(meta: &Value, stored_chunks: u64) -> Result<ArrayInfo, String> {
    let shape = u64s(meta.get("shape"), "shape")?;
    let chunk_shape = u64s(
        meta.pointer("/chunk_grid/configuration/chunk_shape"),
        "chunk_grid.configuration.chunk_shape",
    )?;
    if chunk_shape.len() != shape.len() || chunk_shape.contains(&0) {
        return Err("chunk_shape does not match shape".into());
    }
    let data_type = match meta.get("data_type") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => return Err("no data_type".into()),
    };
    let codecs: Vec<&Value> = meta
        .get("codecs")
        .and_then(Value::as_array)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    let inner_chunk_shape = codecs
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some("sharding_indexed"))
        .map(|c| {
            u64s(
                c.pointer("/configuration/chunk_shape"),
                "sharding chunk_shape",
            )
        })
        .transpose()?;
    let grid_chunks = shape
        .iter()
        .zip(&chunk_shape)
        .map(|(s, c)| s.div_ceil(*c))
        .product();
    Ok(ArrayInfo {
        shape,
        data_type,
        chunk_shape,
        inner_chunk_shape,
        codecs: codecs
            .iter()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect(),
        dimension_names: meta
            .get("dimension_names")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|n| n.as_str().unwrap_or("").to_owned())
                    .collect()
            }),
        grid_chunks,
        stored_chunks,
    })
}

fn dims(v: &[u64]) -> String {
    let parts: Vec<String> = v.iter().map(u64::to_string).collect();
    format!("({})", parts.join(", "))
}

impl fmt::Display for DatasetInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for node in &self.nodes {
            let path = if node.path.is_empty() {
                "/"
            } else {
                &node.path
            };
            match &node.array {
                None => writeln!(f, "{path}  group")?,
                Some(a) => {
                    write!(f, "{path}  array {} {}", a.data_type, dims(&a.shape))?;
                    if let Some(names) = &a.dimension_names {
                        write!(f, " [{}]", names.join(", "))?;
                    }
                    write!(f, "  chunks {}", dims(&a.chunk_shape))?;
                    if let Some(inner) = &a.inner_chunk_shape {
                        write!(f, " of {}", dims(inner))?;
                    }
                    writeln!(
                        f,
                        "  {}/{} stored  codecs {}",
                        a.stored_chunks,
                        a.grid_chunks,
                        a.codecs.join(",")
                    )?;
                }
            }
        }
        Ok(())
    }
}
