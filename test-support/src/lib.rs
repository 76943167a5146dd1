//! Helpers for this workspace's tests, never published: running the real Python peers
//! (py-hamt, zarr-python, xarray from PyPI), finding the services `cargo xtask test`
//! starts, a seeded generator ([`Rng`]), copying a directory as a crash leaves it ([`copy_dir`]), and [`proxy::Proxy`], which puts delay, bandwidth caps and faults between a
//! client and one of those services. Every helper fails loudly when what it needs is
//! missing, so a test that needs a peer or a server fails rather than passing silently.

mod fs;
mod process;
pub mod proxy;
mod python;
mod rng;
mod service;

pub use crate::fs::copy_dir;
pub use crate::process::terminate;
pub use crate::python::run_python_peer;
pub use crate::rng::Rng;
pub use crate::service::required_env;
