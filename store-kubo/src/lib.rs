#![doc = include_str!("../README.md")]

mod error;
mod gateway;
mod store;

pub use crate::error::Error;
pub use crate::gateway::{GATEWAY_SCHEME, GATEWAY_SCHEME_HTTPS, GatewayStore, GatewayStoreBuilder};
pub use crate::store::{KuboStore, KuboStoreBuilder, ReadFrom, SCHEME, SCHEME_HTTPS};
