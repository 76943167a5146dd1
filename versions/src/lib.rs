#![doc = include_str!("../README.md")]

mod commit;
mod error;
mod expire;
mod gc;
mod refs;
mod repo;
mod session;
pub mod zarr;

pub use crate::commit::{COMMIT_TYPE, Commit, from_ms, to_ms};
pub use crate::error::{Error, Result};
pub use crate::expire::Expired;
#[cfg(feature = "s3")]
pub use crate::gc::S3Sweep;
#[cfg(feature = "sled")]
pub use crate::gc::SledSweep;
pub use crate::gc::{GcOptions, GcReport, Sweep, SweepReport};
#[cfg(feature = "s3")]
pub use crate::refs::ObjectRefStore;
#[cfg(feature = "sled")]
pub use crate::refs::SledRefStore;
pub use crate::refs::{MemoryRefStore, RefKind, RefName, RefStore};
pub use crate::repo::{CommitOptions, Committed, LogEntry, Merged, Repo, Revision};
pub use crate::session::{Fork, Session};
