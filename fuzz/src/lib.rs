//! The fuzz targets' harnesses, one module each, and the seed corpus they start from.
//!
//! Each `fuzz_targets/NAME.rs` calls `NAME::run`, which feeds the bytes to the code under
//! test through its public API and asserts what must hold for any input: no panic, and the
//! invariants its module documents. A target that needs several inputs (a manifest and the
//! blocks it points at, a header and a path) splits the bytes with [`frame`]. [`seeds`]
//! writes a corpus of real blocks, CARs, manifests and requests made by this project's own
//! code, so that every run starts from inputs that get past the first check.

pub mod car;
pub mod frame;
pub mod gateway;
pub mod metadata;
pub mod node;
pub mod ops;
pub mod seeds;
pub mod sharded;
pub mod tree;

use std::future::Future;
use std::sync::OnceLock;

/// Runs `f` to completion on one current-thread runtime shared by every input (making one
/// per input would cost more than most inputs take).
pub fn block_on<F: Future>(f: F) -> F::Output {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime builds")
    })
    .block_on(f)
}
