#![doc = include_str!("../README.md")]

mod error;
mod store;

pub use crate::error::Error;
pub use crate::store::{KuboStore, KuboStoreBuilder, ReadFrom, SCHEME, SCHEME_HTTPS};
