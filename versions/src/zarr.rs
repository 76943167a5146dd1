//! What a merge conflict means for a Zarr v3 dataset: which arrays' metadata both writers
//! changed differently, named in the error.
//!
//! A Zarr v3 dataset in a HAMT keeps each array's (and group's) metadata under
//! `PATH/zarr.json` (`zarr.json` for the root group) and its chunks under `PATH/c/…`. Two
//! writers that resize one array differently, or change its codecs, leave its `zarr.json`
//! with two values: the merge refuses, and says which array.

use hamt::{BlockStore, Conflict};

/// Conflicting keys listed in a message, at most.
const SHOWN: usize = 10;

/// A Zarr node whose metadata both sides changed differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataConflict {
    /// The node's path in the dataset (`""` for the root group).
    pub path: String,
    /// `array` or `group`, from our side's (else their side's) `zarr.json`, when it reads.
    pub node_type: Option<String>,
    /// Our and their `shape`, for arrays whose documents read.
    pub shapes: Option<(Vec<u64>, Vec<u64>)>,
}

impl MetadataConflict {
    fn describe(&self) -> String {
        let what = self.node_type.as_deref().unwrap_or("array or group");
        let name = if self.path.is_empty() {
            format!("the root {what}")
        } else {
            format!("zarr {what} {:?}", self.path)
        };
        let key = metadata_key(&self.path);
        match &self.shapes {
            Some((ours, theirs)) if ours != theirs => format!(
                "{name}: its metadata ({key}) was changed differently on both sides \
                 (shape {ours:?} here, {theirs:?} there)"
            ),
            _ => format!("{name}: its metadata ({key}) was changed differently on both sides"),
        }
    }
}

fn metadata_key(path: &str) -> String {
    if path.is_empty() {
        "zarr.json".to_owned()
    } else {
        format!("{path}/zarr.json")
    }
}

/// The path of the Zarr node whose metadata `key` is, if it is a `zarr.json`.
pub fn metadata_path(key: &str) -> Option<&str> {
    if key == "zarr.json" {
        return Some("");
    }
    key.strip_suffix("/zarr.json")
}

/// The Zarr nodes among `conflicts`, described from their documents in `store`
/// (unreadable ones are still named).
pub async fn metadata_conflicts(
    store: &dyn BlockStore,
    conflicts: &[Conflict],
) -> Vec<MetadataConflict> {
    let mut out = Vec::new();
    for c in conflicts {
        let Some(path) = metadata_path(&c.key) else {
            continue;
        };
        let ours = match c.ours {
            Some(cid) => document(store, &cid).await,
            None => None,
        };
        let theirs = match c.theirs {
            Some(cid) => document(store, &cid).await,
            None => None,
        };
        let node_type = ours
            .as_ref()
            .or(theirs.as_ref())
            .and_then(|d| d.get("node_type")?.as_str().map(str::to_owned));
        let shape = |d: &Option<serde_json::Value>| -> Option<Vec<u64>> {
            d.as_ref()?
                .get("shape")?
                .as_array()?
                .iter()
                .map(serde_json::Value::as_u64)
                .collect()
        };
        let shapes = shape(&ours).zip(shape(&theirs));
        out.push(MetadataConflict {
            path: path.to_owned(),
            node_type,
            shapes,
        });
    }
    out
}

async fn document(store: &dyn BlockStore, cid: &hamt::Cid) -> Option<serde_json::Value> {
    let bytes = store.get(cid).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The message of a merge conflict: the Zarr nodes whose metadata conflicts first, then the
/// keys.
pub(crate) fn describe_conflicts(conflicts: &[Conflict], metadata: &[MetadataConflict]) -> String {
    let mut parts = vec![format!(
        "{} key{} changed differently on both sides",
        conflicts.len(),
        if conflicts.len() == 1 { "" } else { "s" }
    )];
    parts.extend(metadata.iter().map(MetadataConflict::describe));
    // Nodes named from the keys alone, when the caller had no store to describe them.
    for c in conflicts {
        if let Some(path) = metadata_path(&c.key)
            && !metadata.iter().any(|m| m.path == path)
        {
            parts.push(
                MetadataConflict {
                    path: path.to_owned(),
                    node_type: None,
                    shapes: None,
                }
                .describe(),
            );
        }
    }
    let mut keys: Vec<String> = conflicts
        .iter()
        .take(SHOWN)
        .map(|c| format!("{:?}", c.key))
        .collect();
    if conflicts.len() > SHOWN {
        keys.push(format!("and {} more", conflicts.len() - SHOWN));
    }
    parts.push(format!("keys: {}", keys.join(", ")));
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keys_name_their_node() {
        assert_eq!(metadata_path("zarr.json"), Some(""));
        assert_eq!(metadata_path("temp/zarr.json"), Some("temp"));
        assert_eq!(metadata_path("a/b/zarr.json"), Some("a/b"));
        assert_eq!(metadata_path("temp/c/0/0"), None);
        assert_eq!(metadata_path("xzarr.json"), None);
    }

    #[test]
    fn messages_name_the_array_and_the_keys() {
        let cid = |s: &str| Some(hamt::HashAlg::Blake3.cid(hamt::Codec::Raw, s.as_bytes()));
        let conflicts = vec![
            Conflict {
                key: "temp/zarr.json".into(),
                base: cid("a"),
                ours: cid("b"),
                theirs: cid("c"),
            },
            Conflict {
                key: "temp/c/0".into(),
                base: None,
                ours: cid("x"),
                theirs: cid("y"),
            },
        ];
        let described = [MetadataConflict {
            path: "temp".into(),
            node_type: Some("array".into()),
            shapes: Some((vec![10, 4], vec![12, 4])),
        }];
        let text = describe_conflicts(&conflicts, &described);
        assert!(
            text.starts_with("2 keys changed differently on both sides; "),
            "{text}"
        );
        assert!(
            text.contains(
                "zarr array \"temp\": its metadata (temp/zarr.json) was changed differently on \
                 both sides (shape [10, 4] here, [12, 4] there)"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("keys: \"temp/zarr.json\", \"temp/c/0\""),
            "{text}"
        );
        let bare = describe_conflicts(&conflicts[..1], &[]);
        assert!(bare.contains("zarr array or group \"temp\""), "{bare}");
    }
}
