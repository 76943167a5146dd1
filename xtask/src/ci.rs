//! What CI runs, listed once: `.ci/run` calls `cargo xtask checks` and then the README's test
//! command, `cargo xtask test`; `cargo xtask ci` runs the same two.

use std::process::Command;

use crate::Result;
use crate::bench::{bench, bench_net, bench_zarr};
use crate::cmd::{cargo, run};

/// The steps before the tests: formatting, clippy with `-D warnings`, the benchmark smoke
/// runs (speed is not asserted), and a short run of every fuzz target.
pub(crate) fn checks() -> Result<()> {
    run(Command::new(cargo()).args(["fmt", "--all", "--check"]))?;
    run(Command::new(cargo()).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The registry with no backend compiles code paths the workspace build never sees.
    run(Command::new(cargo()).args([
        "clippy",
        "-p",
        "hamt-registry",
        "--no-default-features",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    bench(&["--quick".to_owned()])?;
    bench_zarr(true)?;
    bench_net(true)?;
    // With the debug extension the tests install next: the script runs, its speed is not
    // the extension's.
    crate::pyext::bench(true, false)?;
    crate::fuzz::check()
}

/// Everything `.ci/run` runs.
pub(crate) fn ci() -> Result<()> {
    checks()?;
    crate::test::test(&[])
}
