//! Commits: one version of a dataset as a DAG-CBOR block, named by its CID.
//!
//! The block is a map:
//!
//! | key | value |
//! |---|---|
//! | `type` | `"hamt-commit"` |
//! | `version` | `1` |
//! | `root` | link: the dataset's HAMT root |
//! | `parents` | list of links: the commits this one follows (none for the first, two for a merge) |
//! | `message` | string |
//! | `time` | integer: milliseconds since the Unix epoch |
//! | `author` | string, only when given |
//! | `metadata` | map of strings to strings, only when not empty |
//!
//! Every CID is an IPLD link, so a commit's history and datasets are one DAG: a CAR export
//! of a commit carries its ancestry, a gateway serves it like any block, and
//! [`hamt::dag::links`] follows it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hamt::{BlockStore, Cid, Codec};
use ipld_core::ipld::Ipld;

use crate::error::{Error, Result};

/// The `type` of a commit block.
pub const COMMIT_TYPE: &str = "hamt-commit";
const VERSION: i128 = 1;

/// One version of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The dataset's HAMT root.
    pub root: Cid,
    /// The commits this one follows: none for a first commit, one usually, two for a merge
    /// (the branch's head first).
    pub parents: Vec<Cid>,
    /// What changed and why.
    pub message: String,
    /// When it was made, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Who made it.
    pub author: Option<String>,
    /// Anything else worth keeping with it (a job's id, the software that wrote it).
    pub metadata: BTreeMap<String, String>,
}

impl Commit {
    /// A commit of `root` after `parents`, made now.
    pub fn new(root: Cid, parents: Vec<Cid>, message: impl Into<String>) -> Self {
        Self {
            root,
            parents,
            message: message.into(),
            time_ms: now_ms(),
            author: None,
            metadata: BTreeMap::new(),
        }
    }

    /// The time as a [`SystemTime`].
    pub fn time(&self) -> SystemTime {
        from_ms(self.time_ms)
    }

    /// The block's bytes.
    ///
    /// # Errors
    /// [`hamt::Error::Encode`] (not expected: every field encodes).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut map = BTreeMap::new();
        map.insert("type".to_owned(), Ipld::String(COMMIT_TYPE.to_owned()));
        map.insert("version".to_owned(), Ipld::Integer(VERSION));
        map.insert("root".to_owned(), Ipld::Link(self.root));
        map.insert(
            "parents".to_owned(),
            Ipld::List(self.parents.iter().copied().map(Ipld::Link).collect()),
        );
        map.insert("message".to_owned(), Ipld::String(self.message.clone()));
        map.insert("time".to_owned(), Ipld::Integer(i128::from(self.time_ms)));
        if let Some(author) = &self.author {
            map.insert("author".to_owned(), Ipld::String(author.clone()));
        }
        if !self.metadata.is_empty() {
            let meta = self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), Ipld::String(v.clone())))
                .collect();
            map.insert("metadata".to_owned(), Ipld::Map(meta));
        }
        serde_ipld_dagcbor::to_vec(&Ipld::Map(map)).map_err(|e| {
            hamt::Error::Encode {
                reason: e.to_string(),
            }
            .into()
        })
    }

    /// Reads a commit block; `cid` names it in errors.
    ///
    /// # Errors
    /// [`Error::NotACommit`] for a block that is not one (a HAMT node, a damaged commit).
    pub fn decode(cid: &Cid, data: &[u8]) -> Result<Self> {
        let not = |reason: &str| Error::NotACommit {
            cid: *cid,
            reason: reason.to_owned(),
        };
        if cid.codec() != Codec::DagCbor.code() {
            return Err(not("its codec is not DAG-CBOR"));
        }
        let ipld: Ipld = serde_ipld_dagcbor::from_slice(data)
            .map_err(|e| not(&format!("it does not decode as DAG-CBOR ({e})")))?;
        let Ipld::Map(map) = ipld else {
            return Err(not("it is not a map (a HAMT node is a list)"));
        };
        match map.get("type") {
            Some(Ipld::String(t)) if t == COMMIT_TYPE => {}
            _ => return Err(not("it has no `type: hamt-commit`")),
        }
        match map.get("version") {
            Some(Ipld::Integer(VERSION)) => {}
            Some(Ipld::Integer(v)) => {
                return Err(not(&format!("commit format version {v} is not known here")));
            }
            _ => return Err(not("it has no integer `version`")),
        }
        let root = match map.get("root") {
            Some(Ipld::Link(c)) => *c,
            _ => return Err(not("its `root` is not a link")),
        };
        let parents = match map.get("parents") {
            Some(Ipld::List(list)) => list
                .iter()
                .map(|p| match p {
                    Ipld::Link(c) => Ok(*c),
                    _ => Err(not("a parent is not a link")),
                })
                .collect::<Result<Vec<_>>>()?,
            _ => return Err(not("its `parents` is not a list")),
        };
        let message = match map.get("message") {
            Some(Ipld::String(s)) => s.clone(),
            _ => return Err(not("its `message` is not a string")),
        };
        let time_ms = match map.get("time") {
            Some(Ipld::Integer(t)) => {
                i64::try_from(*t).map_err(|_| not("its `time` is out of range"))?
            }
            _ => return Err(not("its `time` is not an integer")),
        };
        let author = match map.get("author") {
            None => None,
            Some(Ipld::String(s)) => Some(s.clone()),
            Some(_) => return Err(not("its `author` is not a string")),
        };
        let metadata = match map.get("metadata") {
            None => BTreeMap::new(),
            Some(Ipld::Map(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Ipld::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(not("a `metadata` value is not a string")),
                })
                .collect::<Result<_>>()?,
            Some(_) => return Err(not("its `metadata` is not a map")),
        };
        Ok(Self {
            root,
            parents,
            message,
            time_ms,
            author,
            metadata,
        })
    }

    /// Writes the commit block to `store`; returns its CID.
    ///
    /// # Errors
    /// Store failures.
    pub async fn write(&self, store: &dyn BlockStore) -> Result<Cid> {
        Ok(store
            .put(Codec::DagCbor, Bytes::from(self.encode()?))
            .await?)
    }

    /// Reads the commit `cid` from `store`.
    ///
    /// # Errors
    /// Store failures ([`hamt::Error::NotFound`]); [`Error::NotACommit`].
    pub async fn read(store: &dyn BlockStore, cid: &Cid) -> Result<Self> {
        if cid.codec() != Codec::DagCbor.code() {
            return Err(Error::NotACommit {
                cid: *cid,
                reason: "its codec is not DAG-CBOR".into(),
            });
        }
        let data = store.get(cid).await?;
        Self::decode(cid, &data)
    }

    /// The commit `cid` if it is one; `None` for any other block (a HAMT root).
    ///
    /// # Errors
    /// Store failures.
    pub async fn read_if_commit(store: &dyn BlockStore, cid: &Cid) -> Result<Option<Self>> {
        match Self::read(store, cid).await {
            Ok(commit) => Ok(Some(commit)),
            Err(Error::NotACommit { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Milliseconds since the Unix epoch now.
pub(crate) fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

/// `time` in milliseconds since the Unix epoch (negative before it).
pub fn to_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The time `ms` milliseconds after the Unix epoch.
pub fn from_ms(ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}
