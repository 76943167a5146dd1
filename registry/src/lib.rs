#![doc = include_str!("../README.md")]

mod error;
mod opened;
mod schemes;

pub use crate::error::Error;
pub use crate::opened::OpenStore;
pub use crate::schemes::{Scheme, default_url, open, schemes, usage};
