#![doc = include_str!("../README.md")]

mod error;
mod index;
mod store;

pub use crate::error::Error;
pub use crate::store::{
    BlockLocation, DEFAULT_PACK_SIZE, PackInfo, S3Store, S3StoreBuilder, SCHEME, Stats,
};
