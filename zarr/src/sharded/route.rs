//! Where a key goes in the sharded layout — a metadata entry of the manifest, a chunk of an
//! array's shard index, or nowhere — by py-hamt 3.6's `_parse_chunk_key` rules, and the key
//! and metadata helpers those rules use: metadata keys, classic (Zarr v2) chunk keys, the
//! root-read rewriting of grouped stores, and a legacy v1 root's primary array.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt as _;
use hamt::{BlockStore, Cid};
use serde_json::{Map, Value};

use super::manifest::{ArrayIndex, Manifest, Version};
use crate::metadata;

/// Array names py-hamt's v1 layout never routes to the index (coordinates were stored as
/// metadata entries), nor takes as the primary array.
const V1_COORDINATES: [&str; 7] = [
    "time",
    "lat",
    "lon",
    "latitude",
    "longitude",
    "forecast_reference_time",
    "step",
];

/// Metadata documents read at once while inferring a v1 root's primary array.
const INFERENCE_CONCURRENCY: usize = 8;

/// Where a key goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Route {
    /// A metadata entry of the manifest (any key that is not a chunk).
    Meta,
    /// Chunk `coords` of the array at `path` (in v1, `""`: the one index). The array may be
    /// unregistered: a write then fails, a read falls back to a metadata entry of that key.
    Chunk {
        /// The array's path.
        path: String,
        /// The chunk's grid coordinates.
        coords: Vec<u64>,
    },
    /// A chunk key outside its array's grid, or with coordinates that are not integers:
    /// ignored on write, absent on read.
    Invalid,
}

/// Where `key` goes, as `manifest` stands.
pub(super) fn route_of(manifest: &Manifest, key: &str) -> Route {
    if metadata::is_metadata_key(key) {
        return Route::Meta;
    }
    if let Some(i) = key.rfind("/c/") {
        return marked(manifest, key, &key[..i], &key[i + 3..], true);
    }
    if let Some(rest) = key.strip_prefix("c/") {
        return marked(manifest, key, "", rest, false);
    }
    classic_chunk_key(manifest, key).map_or(Route::Meta, |(p, c)| checked(manifest, p, c))
}

/// A key with a chunk marker: `path/c/coords`, or `c/coords` (`slash` false).
fn marked(manifest: &Manifest, key: &str, path: &str, coords: &str, slash: bool) -> Route {
    let path = path.trim_matches('/');
    let v1 = manifest.version == Version::V1;
    if v1 {
        // py-hamt's legacy writer stored `c/…` keys as metadata; they are chunks only of a
        // root recorded as the primary. Coordinates and, once the primary is known, every
        // other array are metadata too.
        let primary = &manifest.v1_primary;
        if (!slash && !primary.is_recorded_root())
            || V1_COORDINATES.contains(&leaf(path))
            || primary.exclusive().is_some_and(|p| p != path)
        {
            return Route::Meta;
        }
    }
    let Some(coords) = decimal_parts(coords, '/') else {
        return classic_chunk_key(manifest, key)
            .map_or(Route::Invalid, |(p, c)| checked(manifest, p, c));
    };
    if !v1 {
        return checked(manifest, path.to_owned(), coords);
    }
    // Without a known primary, a named array with metadata of its own and another rank than
    // the index cannot be the primary: its chunks are metadata entries.
    let rank = manifest.arrays.get("").map(|i| i.chunks_per_dim.len());
    let own_metadata = [format!("{path}/zarr.json"), format!("{path}/.zarray")]
        .iter()
        .any(|k| manifest.metadata.contains_key(k));
    if !path.is_empty()
        && manifest.v1_primary.exclusive().is_none()
        && rank != Some(coords.len())
        && own_metadata
    {
        return Route::Meta;
    }
    checked(manifest, String::new(), coords)
}

/// The last part of an array path (`""` for the root).
fn leaf(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A chunk of `path`, or [`Route::Invalid`] when `path` is registered and `coords` lie
/// outside its grid.
fn checked(manifest: &Manifest, path: String, coords: Vec<u64>) -> Route {
    match manifest.arrays.get(&path) {
        Some(index) if index.linear(&coords).is_none() => Route::Invalid,
        _ => Route::Chunk { path, coords },
    }
}

/// Zarr v2 style chunk keys of registered arrays (v2 manifests only): `p/1.2`, then `p/1/2`
/// with as many parts as the array has dimensions, the longest matching array path first.
fn classic_chunk_key(manifest: &Manifest, key: &str) -> Option<(String, Vec<u64>)> {
    if manifest.version != Version::V2 || manifest.arrays.is_empty() {
        return None;
    }
    let (path, last) = key.rsplit_once('/').unwrap_or(("", key));
    let path = path.trim_matches('/');
    if last.contains('.')
        && let Some(coords) = decimal_parts(last, '.')
        && let Some(index) = manifest.arrays.get(path)
        && index.chunks_per_dim.len() == coords.len()
    {
        return Some((path.to_owned(), coords));
    }
    let mut arrays: Vec<(&String, &ArrayIndex)> = manifest.arrays.iter().collect();
    arrays.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    arrays.into_iter().find_map(|(path, index)| {
        let rest = if path.is_empty() {
            Some(key)
        } else {
            key.strip_prefix(path.as_str())
                .and_then(|r| r.strip_prefix('/'))
        };
        let coords = decimal_parts(rest?, '/')?;
        (coords.len() == index.chunks_per_dim.len()).then(|| (path.clone(), coords))
    })
}

/// True when every part of `text` split at `sep` is ASCII digits (py-hamt's classic parser
/// takes any Unicode digit and its `/c/` parser anything `int()` takes, such as `+1`; Zarr
/// writes neither).
pub(super) fn all_digits(text: &str, sep: char) -> bool {
    text.split(sep)
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The integers of `text` split at `sep`, when [`all_digits`] and each fits a `u64`.
pub(super) fn decimal_parts(text: &str, sep: char) -> Option<Vec<u64>> {
    if !all_digits(text, sep) {
        return None;
    }
    text.split(sep).map(|p| p.parse().ok()).collect()
}

/// The Zarr v3 key of chunk `coords` of the array at `path`: `path/c/1/2` (`c/1/2` at the
/// root).
pub(super) fn format_chunk_key<T: std::fmt::Display>(
    path: &str,
    coords: impl IntoIterator<Item = T>,
) -> String {
    let parts: Vec<String> = coords.into_iter().map(|c| c.to_string()).collect();
    if path.is_empty() {
        format!("c/{}", parts.join("/"))
    } else {
        format!("{path}/c/{}", parts.join("/"))
    }
}

/// The key under which a chunk of the index at `path` is listed. In v1 that is the primary
/// array's path; without a recorded root primary the root form is `/c/…`, which routes back
/// to the index where `c/…` would be a metadata key (py-hamt lists them so).
pub(super) fn listed_chunk_key(manifest: &Manifest, path: &str, coords: &[u64]) -> String {
    if manifest.version == Version::V2 {
        return format_chunk_key(path, coords);
    }
    let shown = manifest.v1_primary.exclusive().unwrap_or("");
    let key = format_chunk_key(shown, coords);
    if shown.is_empty() && !manifest.v1_primary.is_recorded_root() {
        format!("/{key}")
    } else {
        key
    }
}

/// The array (or group) path a `zarr.json` or `.zarray` key describes.
pub(super) fn array_path_of_metadata_key(key: &str) -> Option<&str> {
    if key == "zarr.json" || key == ".zarray" {
        return Some("");
    }
    key.strip_suffix("/zarr.json")
        .or_else(|| key.strip_suffix("/.zarray"))
}

/// The group path a `zarr.json` or `.zgroup` key describes.
pub(super) fn group_path_of_metadata_key(key: &str) -> Option<&str> {
    if key == "zarr.json" || key == ".zgroup" {
        return Some("");
    }
    key.strip_suffix("/zarr.json")
        .or_else(|| key.strip_suffix("/.zgroup"))
}

/// (shape, chunk shape) of array metadata, as py-hamt's `_extract_array_metadata` reads it:
/// Zarr v3's `chunk_grid.configuration.chunk_shape`, else Zarr v2's `chunks`.
pub(super) fn array_geometry(meta: &Map<String, Value>) -> Option<(Vec<u64>, Vec<u64>)> {
    let ints =
        |v: &Value| -> Option<Vec<u64>> { v.as_array()?.iter().map(Value::as_u64).collect() };
    let shape = ints(meta.get("shape")?)?;
    let chunks = meta
        .get("chunk_grid")
        .and_then(|g| g.get("configuration"))
        .and_then(|c| c.get("chunk_shape"))
        .or_else(|| meta.get("chunks"))?;
    Some((shape, ints(chunks)?))
}

/// py-hamt's read-key rewriting: in a v2 store whose arrays all sit in one top-level group,
/// keys outside it (but the root documents) are read from inside it, so a reader that opens
/// the store's root finds the group's arrays.
pub(super) fn effective_key(manifest: &Manifest, key: &str) -> String {
    let Some(group) = manifest.default_group() else {
        return key.to_owned();
    };
    let norm = key.trim_matches('/');
    if matches!(
        norm,
        "zarr.json" | ".zgroup" | ".zattrs" | ".zmetadata" | ""
    ) || norm == group
        || norm.starts_with(&format!("{group}/"))
    {
        return key.to_owned();
    }
    format!("{group}/{norm}")
}

/// The metadata documents that could describe a v1 root's primary array: array documents
/// whose array is not a coordinate, by path.
fn v1_candidates(manifest: &Manifest) -> Vec<(String, Cid)> {
    manifest
        .metadata
        .iter()
        .filter_map(|(key, cid)| {
            let path = array_path_of_metadata_key(key)?.trim_matches('/');
            (!V1_COORDINATES.contains(&leaf(path))).then(|| (path.to_owned(), *cid))
        })
        .collect()
}

/// True when the metadata document `raw` declares the geometry of `index`.
fn declares_geometry(raw: &[u8], index: &ArrayIndex) -> bool {
    metadata::json_object(raw)
        .as_ref()
        .and_then(array_geometry)
        .is_some_and(|(shape, chunks)| shape == index.shape && chunks == index.chunk_shape)
}

/// py-hamt's inference of a v1 root's primary array: the one array, among the
/// [`v1_candidates`], whose metadata declares the index's geometry. `None` when no array
/// or more than one does, or when a candidate's document cannot be read (it might have been
/// the primary: guessing from the others could misroute chunks).
pub(super) async fn infer_v1_primary(
    blocks: &Arc<dyn BlockStore>,
    manifest: &Manifest,
) -> Option<String> {
    let index = manifest.arrays.get("")?;
    let mut reads = futures::stream::iter(v1_candidates(manifest))
        .map(|(path, cid)| async move {
            let raw = hamt::unixfs::read_value(blocks, &cid).await;
            (path, raw)
        })
        .buffered(INFERENCE_CONCURRENCY);
    let mut found = BTreeSet::new();
    while let Some((path, raw)) = reads.next().await {
        if declares_geometry(&raw.ok()?, index) {
            found.insert(path);
            if found.len() > 1 {
                return None;
            }
        }
    }
    found.pop_first()
}

#[cfg(test)]
mod tests {
    use super::super::manifest::Primary;
    use super::*;
    use bytes::Bytes;
    use hamt::{Codec, HashAlg, MemoryStore};

    fn cid(n: u8) -> Cid {
        HashAlg::Blake3.cid(Codec::Raw, &[n])
    }

    /// A v2 manifest with the arrays `(path, shape, chunk shape)`, 4 chunks per shard.
    fn v2(arrays: &[(&str, &[u64], &[u64])]) -> Manifest {
        let mut m = Manifest::new_v2(4);
        for (path, shape, chunks) in arrays {
            let index = ArrayIndex::new(shape.to_vec(), chunks.to_vec(), 4).unwrap();
            m.arrays.insert((*path).to_owned(), index);
            m.order.push((*path).to_owned());
        }
        m
    }

    /// A v1 manifest whose one index has a 3×4 grid, with metadata documents at `metadata`.
    fn v1(primary: Primary, metadata: &[&str]) -> Manifest {
        let mut m = Manifest::new_v2(4);
        m.version = Version::V1;
        m.arrays.insert(
            String::new(),
            ArrayIndex::new(vec![3, 4], vec![1, 1], 4).unwrap(),
        );
        m.v1_primary = primary;
        for (i, key) in metadata.iter().enumerate() {
            m.metadata
                .insert((*key).to_owned(), cid(u8::try_from(i).unwrap()));
        }
        m
    }

    fn chunk(path: &str, coords: &[u64]) -> Route {
        Route::Chunk {
            path: path.into(),
            coords: coords.to_vec(),
        }
    }

    #[test]
    fn metadata_suffixes_route_to_metadata_whatever_the_path() {
        let m = v2(&[("g/t", &[4, 4], &[2, 2])]);
        for key in [
            "zarr.json",
            "g/t/zarr.json",
            "g/t/c/zarr.json",
            "g/t/.zattrs",
            ".zgroup",
            "x/.zarray",
            "g/t/c/0/zarr.json",
        ] {
            assert_eq!(route_of(&m, key), Route::Meta, "{key}");
        }
        // Anything that is no chunk key is a metadata entry too.
        for key in ["a/b", "notes.txt", "g/t/0.x", "g/t/1/2/3", "", ".zmetadata"] {
            assert_eq!(route_of(&m, key), Route::Meta, "{key}");
        }
    }

    #[test]
    fn v3_chunk_keys_route_by_their_last_marker() {
        let m = v2(&[("g/t", &[4, 4], &[2, 2]), ("", &[6], &[2])]);
        assert_eq!(route_of(&m, "g/t/c/1/0"), chunk("g/t", &[1, 0]));
        assert_eq!(route_of(&m, "c/2"), chunk("", &[2]));
        // The last `/c/` splits: an array may be called `c`, or sit in a group called `c`.
        let c = v2(&[("c/c", &[4], &[1])]);
        assert_eq!(route_of(&c, "c/c/c/3"), chunk("c/c", &[3]));
        // Leading zeros are the same coordinate, as Python's `int()` reads them.
        assert_eq!(route_of(&m, "g/t/c/001/0"), chunk("g/t", &[1, 0]));
        // Slashes around the path are trimmed.
        assert_eq!(route_of(&m, "g/t//c/1/1"), chunk("g/t", &[1, 1]));
        // An unregistered array's chunk still routes to it (a write then fails).
        assert_eq!(route_of(&m, "g/u/c/9/9"), chunk("g/u", &[9, 9]));
    }

    #[test]
    fn chunk_keys_outside_the_grid_or_not_integers_go_nowhere() {
        let m = v2(&[("g/t", &[4, 4], &[2, 2])]);
        for key in [
            "g/t/c/2/0",                    // past the grid
            "g/t/c/0",                      // the wrong rank
            "g/t/c/0/0/0",                  // the wrong rank
            "g/t/c/x",                      // not an integer
            "g/t/c/",                       // no coordinates
            "g/t/c/0//1",                   // an empty part
            "g/t/c/+1/0",                   // `int()` would take it; Zarr never writes it
            "g/t/c/-1/0",                   // negative
            "g/t/c/99999999999999999999/0", // past u64
            "c/x",
        ] {
            assert_eq!(route_of(&m, key), Route::Invalid, "{key}");
        }
    }

    #[test]
    fn classic_chunk_keys_need_a_registered_array_of_their_rank() {
        let m = v2(&[
            ("g", &[4, 4, 4], &[1, 1, 1]),
            ("g/t", &[4, 4], &[2, 2]),
            ("p", &[8], &[2]),
        ]);
        // Dotted (Zarr v2's default separator).
        assert_eq!(route_of(&m, "g/t/1.0"), chunk("g/t", &[1, 0]));
        assert_eq!(route_of(&m, "g/1.2.3"), chunk("g", &[1, 2, 3]));
        // Slashed without a marker: the longest array path that leaves as many integers
        // as the array has dimensions.
        assert_eq!(route_of(&m, "g/t/1/1"), chunk("g/t", &[1, 1]));
        assert_eq!(route_of(&m, "g/1/2/3"), chunk("g", &[1, 2, 3]));
        assert_eq!(route_of(&m, "p/3"), chunk("p", &[3]));
        // A single integer is slashed, not dotted, even with a dot-less last part.
        assert_eq!(route_of(&m, "p/3.0"), Route::Meta);
        // Past the grid: nowhere, as for `/c/` keys.
        assert_eq!(route_of(&m, "g/t/2.0"), Route::Invalid);
        assert_eq!(route_of(&m, "p/4"), Route::Invalid);
        // Wrong rank or unregistered array: not a chunk.
        for key in ["g/t/1.0.0", "g/t/1", "q/1.0", "q/1", "g/t/1.x", "g/t/.1"] {
            assert_eq!(route_of(&m, key), Route::Meta, "{key}");
        }
        // A marker with non-integer coordinates may still be a classic key of an array
        // whose path holds `/c/`.
        let c = v2(&[("a/c/b", &[4], &[1])]);
        assert_eq!(route_of(&c, "a/c/b/2"), chunk("a/c/b", &[2]));
        // A root array takes bare integers.
        let root = v2(&[("", &[4, 4], &[1, 1])]);
        assert_eq!(route_of(&root, "1.2"), chunk("", &[1, 2]));
        assert_eq!(route_of(&root, "1/2"), chunk("", &[1, 2]));
        assert_eq!(route_of(&root, "1"), Route::Meta);
        // Without arrays nothing is a classic chunk.
        assert_eq!(route_of(&v2(&[]), "t/1.0"), Route::Meta);
    }

    #[test]
    fn v1_routes_only_the_primary_arrays_chunks_to_the_index() {
        let m = v1(Primary::Recorded("temp".into()), &[]);
        assert_eq!(route_of(&m, "temp/c/1/2"), chunk("", &[1, 2]));
        assert_eq!(route_of(&m, "temp/c/3/0"), Route::Invalid);
        assert_eq!(route_of(&m, "temp/c/x"), Route::Invalid);
        for key in ["precip/c/1/2", "c/1/2", "temp/1.2", "temp/1/2"] {
            assert_eq!(route_of(&m, key), Route::Meta, "{key}");
        }
        // An inferred primary is as exclusive as a recorded one.
        let m = v1(Primary::Inferred("g/temp".into()), &[]);
        assert_eq!(route_of(&m, "g/temp/c/0/0"), chunk("", &[0, 0]));
        assert_eq!(route_of(&m, "temp/c/0/0"), Route::Meta);
    }

    #[test]
    fn v1_coordinates_are_metadata_even_as_the_primary() {
        for name in V1_COORDINATES {
            for primary in [
                Primary::Unknown { inferable: false },
                Primary::Recorded(name.into()),
            ] {
                let m = v1(primary, &[]);
                for key in [format!("{name}/c/0/0"), format!("g/{name}/c/0/0")] {
                    assert_eq!(route_of(&m, &key), Route::Meta, "{key}");
                }
            }
        }
        // Only the last part of the path counts.
        let m = v1(Primary::Unknown { inferable: false }, &[]);
        assert_eq!(route_of(&m, "time/t/c/0/0"), chunk("", &[0, 0]));
        assert_eq!(route_of(&m, "times/c/0/0"), chunk("", &[0, 0]));
    }

    #[test]
    fn v1_root_chunk_keys_are_chunks_only_of_a_recorded_root_primary() {
        let recorded = v1(Primary::Recorded(String::new()), &[]);
        assert_eq!(route_of(&recorded, "c/1/1"), chunk("", &[1, 1]));
        assert_eq!(route_of(&recorded, "/c/1/1"), chunk("", &[1, 1]));
        assert_eq!(route_of(&recorded, "t/c/1/1"), Route::Meta);
        for primary in [
            Primary::Inferred(String::new()),
            Primary::Unknown { inferable: true },
        ] {
            let m = v1(primary, &[]);
            assert_eq!(route_of(&m, "c/1/1"), Route::Meta);
            // The listed form of such chunks reads back from the index.
            assert_eq!(route_of(&m, "/c/1/1"), chunk("", &[1, 1]));
            assert_eq!(listed_chunk_key(&m, "", &[1, 1]), "/c/1/1");
        }
        assert_eq!(listed_chunk_key(&recorded, "", &[1, 1]), "c/1/1");
        let named = v1(Primary::Inferred("g/t".into()), &[]);
        assert_eq!(listed_chunk_key(&named, "", &[2, 3]), "g/t/c/2/3");
        assert_eq!(route_of(&named, "g/t/c/2/3"), chunk("", &[2, 3]));
    }

    #[test]
    fn v1_without_a_primary_routes_any_array_but_other_ranked_ones_to_the_index() {
        let m = v1(
            Primary::Unknown { inferable: false },
            &["temp/zarr.json", "flags/zarr.json", "mask/.zarray"],
        );
        assert_eq!(route_of(&m, "temp/c/1/2"), chunk("", &[1, 2]));
        assert_eq!(route_of(&m, "anything/c/0/0"), chunk("", &[0, 0]));
        // Another rank with its own metadata: that array's chunks, stored as metadata.
        assert_eq!(route_of(&m, "flags/c/0"), Route::Meta);
        assert_eq!(route_of(&m, "mask/c/0/0/0"), Route::Meta);
        // Another rank without metadata of its own: checked against the index.
        assert_eq!(route_of(&m, "other/c/0"), Route::Invalid);
    }

    #[test]
    fn listed_v2_chunk_keys_route_back_to_their_chunk() {
        let m = v2(&[("g/t", &[4, 4], &[2, 2]), ("", &[6], &[2])]);
        for (path, coords) in [("g/t", &[1u64, 0][..]), ("", &[2][..])] {
            let key = listed_chunk_key(&m, path, coords);
            assert_eq!(route_of(&m, &key), chunk(path, coords), "{key}");
        }
        assert_eq!(format_chunk_key("g/t", [1, 0]), "g/t/c/1/0");
        assert_eq!(format_chunk_key("", [2]), "c/2");
    }

    #[test]
    fn metadata_keys_name_their_array_or_group() {
        assert_eq!(array_path_of_metadata_key("zarr.json"), Some(""));
        assert_eq!(array_path_of_metadata_key(".zarray"), Some(""));
        assert_eq!(array_path_of_metadata_key("g/t/zarr.json"), Some("g/t"));
        assert_eq!(array_path_of_metadata_key("t/.zarray"), Some("t"));
        for key in [".zgroup", "t/.zattrs", "tzarr.json", "t/c/0"] {
            assert_eq!(array_path_of_metadata_key(key), None, "{key}");
        }
        assert_eq!(group_path_of_metadata_key(".zgroup"), Some(""));
        assert_eq!(group_path_of_metadata_key("g/.zgroup"), Some("g"));
        assert_eq!(group_path_of_metadata_key("g/zarr.json"), Some("g"));
        assert_eq!(group_path_of_metadata_key("g/.zarray"), None);
    }

    #[test]
    fn geometry_from_v3_or_v2_metadata() {
        let doc = |text: &str| metadata::json_object(text.as_bytes()).unwrap();
        let v3 = doc(
            r#"{"shape":[6,10],"chunk_grid":{"name":"regular","configuration":{"chunk_shape":[2,5]}},"chunks":[9,9]}"#,
        );
        assert_eq!(array_geometry(&v3), Some((vec![6, 10], vec![2, 5])));
        let v2 = doc(r#"{"shape":[6],"chunks":[3]}"#);
        assert_eq!(array_geometry(&v2), Some((vec![6], vec![3])));
        for bad in [
            r#"{"node_type":"group"}"#,
            r#"{"shape":[6]}"#,
            r#"{"shape":[6.5],"chunks":[3]}"#,
            r#"{"shape":[6],"chunks":[-3]}"#,
            r#"{"shape":"6","chunks":[3]}"#,
        ] {
            assert_eq!(array_geometry(&doc(bad)), None, "{bad}");
        }
    }

    #[test]
    fn grouped_stores_read_root_keys_from_their_one_group() {
        let one = v2(&[("g/t", &[4], &[2]), ("g/p", &[4], &[2])]);
        assert_eq!(effective_key(&one, "t/c/0"), "g/t/c/0");
        assert_eq!(effective_key(&one, "t/zarr.json"), "g/t/zarr.json");
        assert_eq!(effective_key(&one, "/t/zarr.json"), "g/t/zarr.json");
        for key in [
            "zarr.json",
            ".zgroup",
            ".zattrs",
            ".zmetadata",
            "",
            "g",
            "g/t/c/0",
        ] {
            assert_eq!(effective_key(&one, key), key, "{key}");
        }
        // Two top-level groups, an array at the top, or no arrays: keys stay as they are.
        let two = v2(&[("g/t", &[4], &[2]), ("h/t", &[4], &[2])]);
        let top = v2(&[("g/t", &[4], &[2]), ("t", &[4], &[2])]);
        for m in [two, top, v2(&[])] {
            assert_eq!(effective_key(&m, "t/c/0"), "t/c/0");
        }
    }

    #[tokio::test]
    async fn v1_primary_is_the_one_non_coordinate_array_of_the_index_geometry() {
        let blocks: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
        let put = |text: &'static str| {
            let blocks = blocks.clone();
            async move {
                blocks
                    .put(Codec::Raw, Bytes::from_static(text.as_bytes()))
                    .await
                    .unwrap()
            }
        };
        let matching = put(r#"{"shape":[3,4],"chunks":[1,1]}"#).await;
        let other = put(r#"{"shape":[3,4],"chunks":[3,4]}"#).await;
        let group = put(r#"{"zarr_format":3,"node_type":"group"}"#).await;
        let manifest = |docs: &[(&str, Cid)]| {
            let mut m = v1(Primary::Unknown { inferable: true }, &[]);
            for (key, cid) in docs {
                m.metadata.insert((*key).to_owned(), *cid);
            }
            m
        };
        let infer = |m: Manifest| {
            let blocks = blocks.clone();
            async move { infer_v1_primary(&blocks, &m).await }
        };
        // The one match wins; coordinates, other geometries, groups never do. A `zarr.json`
        // and a `.zarray` of the same array are one candidate.
        let m = manifest(&[
            ("zarr.json", group),
            ("time/zarr.json", matching),
            ("g/lat/.zarray", matching),
            ("g/temp/zarr.json", matching),
            ("g/temp/.zarray", matching),
            ("precip/zarr.json", other),
        ]);
        assert_eq!(infer(m).await.as_deref(), Some("g/temp"));
        // Two matches: ambiguous. None: nothing.
        let two = manifest(&[("a/zarr.json", matching), ("b/zarr.json", matching)]);
        assert_eq!(infer(two).await, None);
        assert_eq!(infer(manifest(&[("a/zarr.json", other)])).await, None);
        // An unreadable candidate might have been the primary: no guess.
        let m = manifest(&[("a/zarr.json", matching), ("b/zarr.json", cid(200))]);
        assert_eq!(infer(m).await, None);
    }
}
