//! A small gridded dataset written and checked with `zarrs`, shared by the tests.

#![allow(
    clippy::unwrap_used,
    clippy::too_many_lines,
    dead_code,
    unreachable_pub
)]

use std::collections::BTreeMap;
use std::sync::Arc;

use ndarray::ArrayD;
use zarrs::array::{ArrayBuilder, data_type};
use zarrs::group::GroupBuilder;

/// A Zarr v3 group document.
pub const GROUP_DOC: &[u8] = br#"{"zarr_format":3,"node_type":"group","attributes":{}}"#;

/// Reads every array of `expected` with `zarrs` from the sharded dataset at `root`, in every
/// read mode, and checks it holds what it should.
pub async fn assert_sharded_reads(
    blocks: &Arc<dyn hamt::BlockStore>,
    root: hamt::Cid,
    expected: &BTreeMap<String, Expected>,
) {
    use hamt_zarr::{ReadMode, ShardedStore};
    for mode in [ReadMode::Full, ReadMode::Sparse, ReadMode::Auto] {
        let st = Arc::new(
            ShardedStore::builder(blocks.clone())
                .root(root)
                .read_only()
                .read_mode(mode)
                .build()
                .await
                .unwrap(),
        );
        for (path, want) in expected {
            assert_eq!(
                &read_array(&st, path).await.unwrap(),
                want,
                "{path} in {mode:?}"
            );
        }
    }
}

/// Shape, dtype and values (flattened, C order, as f64) of one array.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub shape: Vec<u64>,
    pub dtype: String,
    pub values: Vec<f64>,
}

pub const SHAPE: [u64; 3] = [6, 10, 12];
pub const CHUNKS: [u64; 3] = [2, 5, 4];

/// Writes a group at `prefix` (`""` or `"name/"`) holding `temp` (f32), `precip` (f64),
/// `count` (i32) on a (time, lat, lon) grid, and the three coordinate arrays. Returns what
/// each array holds, keyed by path.
pub async fn write_dataset<S>(
    store: &Arc<S>,
    prefix: &str,
    scale: f64,
) -> BTreeMap<String, Expected>
where
    S: ?Sized + zarrs::storage::AsyncReadableWritableStorageTraits + 'static,
{
    let group_path = format!("/{}", prefix.trim_end_matches('/'));
    let mut group = GroupBuilder::new()
        .build(store.clone(), &group_path)
        .unwrap();
    group
        .attributes_mut()
        .insert("title".into(), serde_json::json!("written by zarrs"));
    group.async_store_metadata().await.unwrap();
    if !prefix.is_empty() {
        GroupBuilder::new()
            .build(store.clone(), "/")
            .unwrap()
            .async_store_metadata()
            .await
            .unwrap();
    }

    let n: usize = SHAPE.iter().product::<u64>().try_into().unwrap();
    let mut out = BTreeMap::new();
    let dims = Some(["time", "lat", "lon"]);
    let zstd: Arc<dyn zarrs::array::BytesToBytesCodecTraits> =
        Arc::new(zarrs::array::codec::ZstdCodec::new(3, false));

    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let temp: Vec<f32> = (0..n).map(|i| (i as f64 * 0.25 + scale) as f32).collect();
    #[allow(clippy::cast_precision_loss)]
    let precip: Vec<f64> = (0..n).map(|i| (i as f64).sin() * scale).collect();
    let count: Vec<i32> = (0..n).map(|i| i32::try_from(i % 97).unwrap()).collect();

    macro_rules! array {
        ($name:expr, $dt:expr, $fill:expr, $values:expr, $dtype:expr, $shape:expr, $chunks:expr, $dims:expr) => {{
            let path = format!("{prefix}{}", $name);
            let array = ArrayBuilder::new($shape.to_vec(), $chunks.to_vec(), $dt, $fill)
                .bytes_to_bytes_codecs(vec![zstd.clone()])
                .dimension_names($dims)
                .build_arc(store.clone(), &format!("/{path}"))
                .unwrap();
            array.async_store_metadata().await.unwrap();
            let values = $values;
            array
                .async_store_array_subset(&array.subset_all(), &values[..])
                .await
                .unwrap();
            #[allow(clippy::cast_precision_loss, clippy::cast_lossless)]
            let as_f64: Vec<f64> = values.iter().map(|v| *v as f64).collect();
            out.insert(
                path,
                Expected {
                    shape: $shape.to_vec(),
                    dtype: $dtype.into(),
                    values: as_f64,
                },
            );
        }};
    }
    array!(
        "temp",
        data_type::float32(),
        f32::NAN,
        temp,
        "float32",
        SHAPE,
        CHUNKS,
        dims
    );
    array!(
        "precip",
        data_type::float64(),
        f64::NAN,
        precip,
        "float64",
        SHAPE,
        CHUNKS,
        dims
    );
    array!(
        "count",
        data_type::int32(),
        0i32,
        count,
        "int32",
        SHAPE,
        CHUNKS,
        dims
    );
    let time: Vec<i64> = (0..6).collect();
    #[allow(clippy::cast_precision_loss)]
    let lat: Vec<f64> = (0..10).map(|i| -45.0 + 10.0 * f64::from(i)).collect();
    let lon: Vec<f64> = (0..12).map(|i| 30.0 * f64::from(i)).collect();
    array!(
        "time",
        data_type::int64(),
        0i64,
        time,
        "int64",
        [6u64],
        [6u64],
        Some(["time"])
    );
    array!(
        "lat",
        data_type::float64(),
        f64::NAN,
        lat,
        "float64",
        [10u64],
        [10u64],
        Some(["lat"])
    );
    array!(
        "lon",
        data_type::float64(),
        f64::NAN,
        lon,
        "float64",
        [12u64],
        [12u64],
        Some(["lon"])
    );
    out
}

/// Reads the whole array at `path` with `zarrs` as f64 values.
pub async fn read_array<S>(store: &Arc<S>, path: &str) -> Result<Expected, zarrs::array::ArrayError>
where
    S: ?Sized + zarrs::storage::AsyncReadableStorageTraits + 'static,
{
    let array = zarrs::array::Array::async_open(store.clone(), &format!("/{path}"))
        .await
        .map_err(|e| zarrs::array::ArrayError::Other(e.to_string()))?;
    let subset = array.subset_all();
    let dtype = array.data_type().to_string();
    // Shown as "int32 / <i4": keep the Zarr name.
    let dtype = dtype.split(' ').next().unwrap_or_default().to_owned();
    #[allow(clippy::cast_precision_loss, clippy::cast_lossless)]
    let values: Vec<f64> = match dtype.as_str() {
        "float32" => {
            let a: ArrayD<f32> = array.async_retrieve_array_subset(&subset).await?;
            a.iter().map(|v| f64::from(*v)).collect()
        }
        "float64" => {
            let a: ArrayD<f64> = array.async_retrieve_array_subset(&subset).await?;
            a.iter().copied().collect()
        }
        "int32" => {
            let a: ArrayD<i32> = array.async_retrieve_array_subset(&subset).await?;
            a.iter().map(|v| f64::from(*v)).collect()
        }
        "int64" => {
            let a: ArrayD<i64> = array.async_retrieve_array_subset(&subset).await?;
            a.iter().map(|v| *v as f64).collect()
        }
        other => panic!("unexpected dtype {other} at {path}"),
    };
    Ok(Expected {
        shape: array.shape().to_vec(),
        dtype,
        values,
    })
}

/// Parses the peer's `arrays` JSON.
pub fn expected_from_json(arrays: &serde_json::Value) -> BTreeMap<String, Expected> {
    arrays
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, a)| {
            let shape = a["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            let values = a["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let dtype = a["dtype"].as_str().unwrap().to_owned();
            (
                path.clone(),
                Expected {
                    shape,
                    dtype,
                    values,
                },
            )
        })
        .collect()
}
