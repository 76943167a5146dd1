#![doc = include_str!("../README.md")]

mod cached;
mod closing;
mod error;
mod guard;
mod large;
mod store;
mod url;

pub use crate::cached::{CachedStore, WriteMode};
pub use crate::error::Error;
pub use crate::store::{DEFAULT_CACHE_BYTES, SCHEME, SledStore, SledStoreBuilder, Table};
