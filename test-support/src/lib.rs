//! Helpers for this workspace's tests, never published: running the real Python peers
//! (py-hamt, zarr-python, xarray from PyPI), finding the services `cargo xtask test`
//! starts, a seeded generator ([`Rng`]), and [`proxy::Proxy`], which puts delay, bandwidth caps and faults between a
//! client and one of those services. Every helper fails loudly when what it needs is
//! missing, so a test that needs a peer or a server fails rather than passing silently.

mod process;
pub mod proxy;
mod python;
mod rng;
mod service;

pub use crate::process::terminate;
pub use crate::python::run_python_peer;
pub use crate::rng::Rng;
pub use crate::service::required_env;
