#![doc = include_str!("../README.md")]

mod cached;
mod error;
mod store;

pub use crate::cached::{CachedStore, WriteMode};
pub use crate::error::Error;
pub use crate::store::{SCHEME, SledStore, SledStoreBuilder};
