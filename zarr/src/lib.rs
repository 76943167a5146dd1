#![doc = include_str!("../README.md")]

mod blocking;
mod crypto;
mod dir;
mod error;
mod info;
mod store;

pub use crate::blocking::{BlockingHamtStore, TokioBlockOn, blocking};
pub use crate::crypto::{Encryption, EncryptionKey, NONCE_LEN, OVERHEAD, TAG_LEN};
pub use crate::dir::{Copied, export_dir, import_dir, scan_dir};
pub use crate::error::{Error, Result};
pub use crate::info::{ArrayInfo, DatasetInfo, NodeInfo, dataset_info};
pub use crate::store::{HamtStore, HamtStoreBuilder};
pub use zarrs_storage;
