//! What CI runs, listed once: `.ci/run` calls `cargo xtask checks` and then the README's test
//! command, `cargo xtask test`; `cargo xtask ci` runs the same two.

use std::process::Command;

use crate::Result;
use crate::bench::{Build, bench, bench_net, bench_zarr};
use crate::cmd::{cargo, run};

/// The steps before the tests: formatting, clippy with `-D warnings`, the benchmark smoke
/// runs (speed is not asserted), and a short run of every fuzz target.
pub(crate) fn checks() -> Result<()> {
    // Downloads, not compilation: they overlap with clippy instead of adding to it.
    let installs = std::thread::spawn(install_services);
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
    installs
        .join()
        .map_err(|_| "the thread installing the test services panicked")??;
    // On debug builds, which the tests reuse: the benchmarks' code runs, their figures are
    // not the release speed (a release build of the workspace would take longer than the
    // tests do).
    bench(&["--quick".to_owned(), "--debug".to_owned()])?;
    bench_zarr(true, Build::Debug)?;
    bench_net(true, Build::Debug)?;
    crate::pyext::bench(true, Build::Debug)?;
    crate::fuzz::check()
}

/// What the benchmarks and tests install before they start: both venvs (from PyPI), the
/// IPFS test node and helia (from npm).
fn install_services() -> Result<()> {
    crate::python::python_env()?;
    crate::python::newest_env()?;
    crate::services::IpfsNode::install()?;
    crate::helia::install()?;
    Ok(())
}

/// Everything `.ci/run` runs.
pub(crate) fn ci() -> Result<()> {
    checks()?;
    crate::test::test(&[])
}
