#![doc = include_str!("../README.md")]

mod blocking;
mod crypto;
mod dataset;
mod dir;
mod error;
mod info;
mod metadata;
mod sharded;
mod source;
mod storage;
mod store;

pub use crate::blocking::{
    BlockingDataset, BlockingHamtStore, BlockingShardedStore, TokioBlockOn, blocking,
};
pub use crate::crypto::{Encryption, EncryptionKey, NONCE_LEN, OVERHEAD, TAG_LEN};
pub use crate::dataset::{Dataset, DatasetBuilder, Layout};
pub use crate::dir::{Copied, export_dir, import_dir, scan_dir};
pub use crate::error::{Error, Result};
pub use crate::info::{ArrayInfo, DatasetInfo, NodeInfo, dataset_info};
pub use crate::sharded::{
    DEFAULT_CACHE_BYTES, ReadMode, SPARSE_PROMOTE_THRESHOLD, ShardStats, ShardedStore,
    ShardedStoreBuilder, V1, V2, Version, hamt_to_sharded,
};
pub use crate::source::Source;
pub use crate::store::{HamtStore, HamtStoreBuilder};
pub use zarrs_storage;
