//! `cargo xtask`: the project's automation, in Rust so that it needs nothing but cargo.
//!
//! - `cargo xtask test [CRATE...]` — the README's test command: installs and starts what the
//!   tests need (a Python ≥ 3.12 venv with py-hamt and zarr from PyPI, the JavaScript IPFS
//!   node from npm, moto's S3 server), runs the tests of the named crates or of the whole
//!   workspace, and ends with one line totalling them.
//! - `cargo xtask bench [core|gateway|kubo|zarr|s3|net|versions|python] [--quick] [--debug]`
//!   — benchmarks as ratios against a peer measured in the same run.
//! - `cargo xtask ci` — everything `.ci/run` runs: `checks`, then `test`.
//! - `cargo xtask checks` — the CI steps before the tests: format, clippy with
//!   `-D warnings`, benchmark smoke runs, a short run of every fuzz target.
//! - `cargo xtask fuzz [TARGET] [--time SECONDS]` — the cargo-fuzz targets of `fuzz/` on a
//!   seed corpus the project's own code writes.
//!
//! Each job lives in a module of its own: [`services`] (the servers tests run against),
//! [`python`] (the venvs), [`pyext`] (the Python extension), [`helia`] (the JavaScript
//! IPFS client), [`test`], [`bench`], [`fuzz`], [`ci`]; [`cmd`] runs commands; [`tidy`]
//! holds the repository checks, run as ordinary tests.

mod bench;
mod ci;
mod cmd;
mod fuzz;
mod helia;
mod pyext;
mod python;
mod services;
mod test;
#[cfg(test)]
mod tidy;

use std::env;
use std::process::ExitCode;

/// What every step returns: a message for the user on failure.
type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test::test(&args[1..]),
        Some("ci") => ci::ci(),
        Some("checks") => ci::checks(),
        Some("bench") => bench::bench(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("python") => python::python_env()
            .and_then(|py| Ok([py, python::newest_env()?]))
            .map(|pys| pys.iter().for_each(|py| println!("{}", py.display()))),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <test [CRATE...] | bench [core|gateway|kubo|zarr|s3|net|versions|python] [--quick] [--debug] | fuzz [TARGET] [--time SECONDS] | checks | ci | python>
  test [CRATE...]  run the tests of the named crates (all when none is named), with the
                   Python peers and services they need
  bench [core|gateway|kubo|zarr|s3|net|versions|python] [--quick] [--debug]
                   core: benchmarks against fvm_ipld_hamt and py-hamt, and peak memory, as
                   one table of ratios; gateway: `hamt serve` against the JavaScript IPFS
                   node's gateway; kubo: KuboStore against py-hamt's KuboCAS on that node;
                   zarr: every chunk through HamtStore on sled, a directory store and
                   py-hamt; s3: S3Store against one object per block on moto's server;
                   net: reads through a delayed 200 Mbit/s proxy at RTT 0/20/80 ms against
                   the link's floor and py-hamt;
                   versions: a three-way merge and log, and dask writes through forks at
                   1/2/4 workers against icechunk's; python: hamt_rs from Python against
                   zarr's LocalStore with zarrs-python, icechunk and py-hamt
                   (--quick: small sizes; --debug: dev-profile builds, figures not the
                   release speed; CI's smoke runs use both)
  fuzz [TARGET] [--time SECONDS]
                   build the cargo-fuzz targets (node, tree, car, sharded, metadata,
                   gateway, ops), write their seed corpus and run the named one (each in
                   turn when none is named) for SECONDS (60)
  checks           cargo fmt --check, clippy -D warnings, the benchmark smoke runs, every
                   fuzz target for 15 s
  ci               checks, then test: what .ci/run runs
  python           create the two venvs and print their interpreters";
