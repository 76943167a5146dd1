#![doc = include_str!("../README.md")]

mod block;
mod cache;
pub mod car;
pub mod codec;
pub mod dag;
mod diff;
mod error;
mod flush;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hamt;
mod link;
mod merge;
mod node;
mod read;
mod store;
#[cfg(feature = "test-suite")]
pub mod test_suite;
mod tree;
pub mod unixfs;

pub use crate::block::{
    Block, Codec, HashAlg, MAX_INLINE, can_verify, identity_cid, inline_data, parse_cid, verify,
};
pub use crate::diff::{Change, diff};
pub use crate::error::{BoxError, Error, Result};
pub use crate::hamt::{Config, Hamt, HamtReader};
pub use crate::merge::{Conflict, MergeOutcome, merge, merge_with_config};
pub use crate::store::{
    BlockStore, BlockStream, Capabilities, Check, CheckReport, DEFAULT_CONCURRENCY, DynBlockStore,
    ImportCar, ImportedCar, MemoryStore, Pinning, SubtreeFetch,
};
pub use crate::tree::Stats;
pub use bytes::Bytes;
pub use cid::Cid;
