#![doc = include_str!("../README.md")]

mod error;
mod opened;
#[cfg(feature = "versions")]
mod refs;
mod schemes;

pub use crate::error::Error;
pub use crate::opened::OpenStore;
#[cfg(feature = "versions")]
pub use crate::refs::{open_refs, sweeper};
pub use crate::schemes::{Scheme, default_url, open, schemes, usage};
