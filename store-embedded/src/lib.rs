#![doc = include_str!("../README.md")]

mod error;
mod store;

pub use crate::error::Error;
pub use crate::store::{DEFAULT_FETCH_TIMEOUT, EmbeddedStore, EmbeddedStoreBuilder, SCHEME};
