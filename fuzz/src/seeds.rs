//! The seed corpus: real inputs for every target, made by this project's own code (HAMT
//! nodes and the CARs of their trees, a sharded Zarr dataset's manifest and shards, metadata
//! scripts, gateway requests, operation sequences), written to `DIR/TARGET/NAME`.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use futures::io::Cursor;
use hamt::car::{CarReader, export_car};
use hamt::{BlockStore, Bytes, Cid, Codec, Config, Hamt, MemoryStore};
use hamt_zarr::ShardedStore;

use crate::frame::join;

/// Zarr v3 metadata of a float32 array of `shape` in chunks of `chunks` (JSON lists).
pub fn array_metadata(shape: &str, chunks: &str) -> String {
    format!(
        r#"{{"zarr_format":3,"node_type":"array","shape":{shape},"data_type":"float32","chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":{chunks}}}}},"chunk_key_encoding":{{"name":"default","configuration":{{"separator":"/"}}}},"fill_value":0.0,"codecs":[{{"name":"bytes","configuration":{{"endian":"little"}}}}],"attributes":{{}}}}"#
    )
}

/// Zarr v3 group metadata.
pub const GROUP: &str = r#"{"zarr_format":3,"node_type":"group","attributes":{}}"#;

/// Writes every target's seeds under `dir`; returns how many files it wrote.
///
/// # Errors
/// Failures to write the files.
pub fn write_all(dir: &Path) -> io::Result<usize> {
    crate::block_on(async {
        let mut n = 0;
        let mut put = |target: &str, name: &str, bytes: &[u8]| -> io::Result<()> {
            let d = dir.join(target);
            fs::create_dir_all(&d)?;
            fs::write(d.join(name), bytes)?;
            n += 1;
            Ok(())
        };
        for (i, (nodes, car)) in hamt_seeds().await.into_iter().enumerate() {
            put("car", &format!("hamt-{i}.car"), &car)?;
            for (j, node) in nodes.iter().enumerate() {
                put("node", &format!("hamt-{i}-node-{j}"), node)?;
                put("tree", &format!("hamt-{i}-node-{j}"), node)?;
            }
        }
        for (i, (car, input)) in sharded_seeds().await.into_iter().enumerate() {
            put("car", &format!("sharded-{i}.car"), &car)?;
            put("sharded", &format!("dataset-{i}"), &input)?;
        }
        for (i, script) in metadata_seeds().iter().enumerate() {
            put("metadata", &format!("script-{i}"), script)?;
        }
        for (i, request) in gateway_seeds().iter().enumerate() {
            put("gateway", &format!("request-{i}"), request)?;
        }
        for (i, ops) in ops_seeds().iter().enumerate() {
            put("ops", &format!("ops-{i}"), ops)?;
        }
        Ok(n)
    })
}

/// The blocks of the CAR `car`, in order.
async fn car_blocks(car: &[u8]) -> Vec<(Cid, Bytes)> {
    let mut reader = CarReader::new(Cursor::new(car)).await.expect("our own CAR");
    let mut blocks = Vec::new();
    while let Some(b) = reader.next_block().await.expect("our own CAR") {
        blocks.push(b);
    }
    blocks
}

async fn car_of(store: &Arc<dyn BlockStore>, root: Cid) -> Vec<u8> {
    let mut out = Vec::new();
    export_car(store, root, &mut out)
        .await
        .expect("memory store");
    out
}

/// For a few trees (bucket sizes 1, 2 and 4, inlined values, an empty tree): the DAG-CBOR
/// node blocks and the CAR of the whole tree.
async fn hamt_seeds() -> Vec<(Vec<Vec<u8>>, Vec<u8>)> {
    let mut out = Vec::new();
    for (bucket, keys, inline) in [(4, 0, 0), (4, 200, 0), (1, 40, 0), (2, 60, 8), (3, 10, 0)] {
        let store: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
        let config = Config::new().max_bucket_size(bucket).inline_values(inline);
        let mut map = Hamt::with_config(store.clone(), config).expect("a valid config");
        for i in 0..keys {
            let key = if i % 7 == 0 {
                format!("a-longer-key/{i}/zarr.json")
            } else {
                format!("k{i}")
            };
            map.insert(&key, format!("v{i}").into_bytes())
                .await
                .expect("memory store");
        }
        let root = map.flush().await.expect("memory store");
        let car = car_of(&store, root).await;
        let nodes = car_blocks(&car)
            .await
            .into_iter()
            .filter(|(cid, _)| cid.codec() == Codec::DagCbor.code())
            .map(|(_, b)| b.to_vec())
            .take(8)
            .collect();
        out.push((nodes, car));
    }
    out
}

/// Sharded datasets: the CAR of each, and the `sharded` target's input (manifest, keys to
/// read, then every other block).
async fn sharded_seeds() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let layouts: [&[(&str, &str, &str)]; 2] = [
        &[("g/temp", "[8,8]", "[2,2]"), ("g/lat", "[8]", "[4]")],
        &[("group/precip", "[5,3,4]", "[2,2,2]")],
    ];
    for arrays in layouts {
        let store: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
        let zarr = ShardedStore::create(store.clone(), 3)
            .await
            .expect("memory store");
        let mut keys = Vec::new();
        for (path, shape, chunks) in arrays {
            let group = path.split('/').next().unwrap_or_default();
            zarr.set_value(&format!("{group}/zarr.json"), GROUP)
                .await
                .expect("metadata");
            let key = format!("{path}/zarr.json");
            zarr.set_value(&key, array_metadata(shape, chunks))
                .await
                .expect("metadata");
            keys.push(key);
            // Every other chunk along the first axis, so that some shards stay unwritten.
            let dims: Vec<u64> = serde_json::from_str::<Vec<u64>>(shape)
                .expect("a shape")
                .iter()
                .zip(serde_json::from_str::<Vec<u64>>(chunks).expect("a chunk shape"))
                .map(|(s, c)| s.div_ceil(c))
                .collect();
            for first in (0..dims[0]).step_by(2) {
                let rest: Vec<String> = dims[1..].iter().map(|d| (d - 1).to_string()).collect();
                let coords = std::iter::once(first.to_string())
                    .chain(rest)
                    .collect::<Vec<_>>()
                    .join("/");
                let key = format!("{path}/c/{coords}");
                zarr.set_value(&key, format!("chunk {key}").into_bytes())
                    .await
                    .expect("a chunk");
                keys.push(key);
            }
        }
        let root = zarr.flush().await.expect("memory store");
        let car = car_of(&store, root).await;
        let blocks = car_blocks(&car).await;
        let manifest = store.get(&root).await.expect("memory store");
        let mut parts: Vec<&[u8]> = vec![&manifest];
        let keys = keys.join("\n");
        parts.push(keys.as_bytes());
        let mut seen = BTreeSet::from([root]);
        for (cid, block) in &blocks {
            if seen.insert(*cid) {
                parts.push(block);
            }
        }
        out.push((car, join(parts)));
    }
    out
}

fn op(code: u8, key: &str, value: &[u8]) -> Vec<u8> {
    let mut out = vec![code];
    out.extend_from_slice(key.as_bytes());
    if !value.is_empty() {
        out.push(0);
        out.extend_from_slice(value);
    }
    out
}

fn metadata_seeds() -> Vec<Vec<u8>> {
    let array = array_metadata("[6,4]", "[2,2]");
    let scripts: Vec<Vec<Vec<u8>>> = vec![
        vec![
            vec![2],
            op(b'S', "zarr.json", GROUP.as_bytes()),
            op(b'S', "temp/zarr.json", array.as_bytes()),
            op(b'S', "temp/c/0/0", b"chunk 0 0"),
            op(b'S', "temp/c/2/1", b"chunk 2 1"),
            op(b'S', "temp/c/9/9", b"outside the grid"),
            op(b'G', "temp/c/0/0", b""),
            op(b'F', "", b""),
            op(b'R', "temp", b"[10,4]"),
            op(b'S', "temp/c/4/1", b"chunk 4 1"),
            op(b'L', "temp/", b""),
            op(b'D', "temp/c/0/0", b""),
            op(b'F', "", b""),
        ],
        vec![
            vec![0],
            op(b'S', "group/zarr.json", GROUP.as_bytes()),
            op(b'S', "group/a/zarr.json", array_metadata("[5]", "[2]").as_bytes()),
            op(b'S', "group/a/c/2", b"last"),
            op(b'S', "a/c/1", b"outside the group"),
            op(b'G', "a/c/2", b""),
            op(b'P', "group/a", b""),
            op(b'F', "", b""),
        ],
        vec![
            vec![5],
            op(b'S', ".zgroup", br#"{"zarr_format": 2}"#),
            op(
                b'S',
                "v2/.zarray",
                br#"{"zarr_format":2,"shape":[4,4],"chunks":[2,2],"dtype":"<f4","compressor":null,"fill_value":0,"order":"C","filters":null}"#,
            ),
            op(b'S', "v2/.zattrs", br#"{"units":"K"}"#),
            op(b'S', "v2/1.1", b"classic key"),
            op(b'S', "v2/0/1", b"nested key"),
            op(b'G', "v2/1.1", b""),
            op(b'F', "", b""),
        ],
    ];
    scripts
        .iter()
        .map(|s| join(s.iter().map(Vec::as_slice)))
        .collect()
}

fn gateway_seeds() -> Vec<Vec<u8>> {
    let requests: [[&[u8]; 6]; 10] = [
        [&[0, 0], b"", b"", b"", b"", b""],
        [&[0, 0], b"bytes=0-9", b"", b"", b"", b""],
        [
            &[0, 0],
            b"bytes=-5",
            b"application/vnd.ipld.raw",
            b"",
            b"",
            b"",
        ],
        [&[1, 0], b"bytes=0-", b"", b"", b"", b""],
        [&[0, 1], b"bytes=990-2000", b"", b"", b"", b""],
        [
            &[2, 0],
            b"",
            b"application/vnd.ipld.car;version=1",
            b"",
            b"",
            b"",
        ],
        [
            &[2, 0],
            b"",
            b"text/html, application/vnd.ipld.raw;q=0.9",
            b"",
            b"",
            b"raw",
        ],
        [&[0, 0], b"", b"", b"\"x\", *", b"", b"car"],
        [&[0, 4], b"bytes=1-2", b"", b"", b"Bearer fuzz-secret", b""],
        [&[0, 2], b"", b"", b"", b"", b"/ipfs/bafkqaaa?format=raw"],
    ];
    requests.iter().map(|r| join(r.iter().copied())).collect()
}

fn ops_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for control in [0u8, 1, 3, 4, 8] {
        let mut ops = vec![control];
        for i in 0..40u8 {
            ops.extend_from_slice(&[i % 4, i.wrapping_mul(37)]);
        }
        ops.extend_from_slice(&[7, 0]);
        for i in 0..20u8 {
            ops.extend_from_slice(&[4, i.wrapping_mul(37)]);
        }
        ops.extend_from_slice(&[6, 0]);
        seeds.push(ops);
    }
    seeds
}
