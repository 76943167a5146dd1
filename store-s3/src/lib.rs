#![doc = include_str!("../README.md")]

mod builder;
mod error;
mod index;
mod store;

pub use crate::builder::{Credentials, S3StoreBuilder};
pub use crate::error::Error;
pub use crate::store::{BlockLocation, DEFAULT_PACK_SIZE, PackInfo, S3Store, SCHEME, Stats};
