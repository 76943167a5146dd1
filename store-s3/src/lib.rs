#![doc = include_str!("../README.md")]

mod error;
mod index;
mod store;

pub use crate::error::Error;
pub use crate::store::{
    BlockLocation, Credentials, DEFAULT_PACK_SIZE, S3Store, S3StoreBuilder, SCHEME, Stats,
};
