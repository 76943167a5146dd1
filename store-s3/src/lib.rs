#![doc = include_str!("../README.md")]

mod builder;
mod error;
mod index;
mod store;

pub use crate::builder::{Credentials, S3StoreBuilder};
pub use crate::error::Error;
pub use crate::store::{BlockLocation, DEFAULT_PACK_SIZE, S3Store, SCHEME, Stats};
