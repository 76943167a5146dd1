//! The Python extension `hamt_rs` (`python/`): built with maturin into both venvs, its pytest
//! suite run in each, and its benchmark.
//!
//! The py-hamt venv (zarr 3.0.9) runs every test; the newest-zarr venv runs all but those
//! marked `pyhamt` (py-hamt pins zarr 3.0.9, so it cannot be installed there).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;
use crate::bench::Build;
use crate::cmd::{root, run, run_lines, target_dir, xtask_dir};
use crate::python::{newest_env, python_env};
use crate::services::{IpfsNode, S3Server};

/// The crate's name, as `cargo xtask test` takes it.
pub(crate) const CRATE: &str = "hamt-python";

/// The feature of `python/Cargo.toml` that gives its dependencies the features the
/// workspace's test build gives them (checked by a tidy test).
pub(crate) const DEBUG_FEATURES: &str = "workspace-test-features";

/// Builds the wheel in `build`'s profile and installs it into both venvs; returns the two
/// interpreters, py-hamt's first.
pub(crate) fn install(build: Build) -> Result<[PathBuf; 2]> {
    let venvs = [python_env()?, newest_env()?];
    let profile = build.profile();
    let out = xtask_dir().join("wheels").join(profile);
    let _ = fs::remove_dir_all(&out);
    let maturin = venvs[0].with_file_name("maturin");
    let mut cmd = Command::new(&maturin);
    cmd.args(["build", "--quiet", "--profile", profile, "-m"])
        .arg(root().join("python/Cargo.toml"))
        .arg("-o")
        .arg(&out);
    if build == Build::Debug {
        // The debug wheel follows the test build, which has compiled its dependencies with
        // the whole workspace's features; with the same features they are reused.
        cmd.args(["--features", DEBUG_FEATURES]);
    }
    run(&mut cmd)?;
    let wheel = fs::read_dir(&out)
        .map_err(|e| format!("{}: {e}", out.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("maturin built no wheel")?;
    for python in &venvs {
        run(Command::new(python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--force-reinstall",
            ])
            .arg(&wheel))?;
    }
    Ok(venvs)
}

/// Pass and fail counts of the pytest runs.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) passed: u64,
    pub(crate) failed: u64,
    pub(crate) skipped: u64,
}

/// Builds the debug extension into both venvs and runs `python/tests` in each, with the
/// services' addresses in the environment and the `hamt` binary for `hamt serve`.
pub(crate) fn test(node: &IpfsNode, s3: &S3Server, counts: &mut Counts) -> Result<()> {
    // `hamt` for `hamt serve`, built as `cargo test --workspace --all-features` builds it, so
    // that after a workspace run nothing compiles again (`-p hamt-cli` alone resolves other
    // features and rebuilt half the dependencies).
    Build::Debug.bins(&[("hamt-cli", "hamt")])?;
    let [pyhamt, newest] = install(Build::Debug)?;
    let mut failures = Vec::new();
    for (python, select) in [(&pyhamt, None), (&newest, Some("not pyhamt"))] {
        let mut cmd = Command::new(python);
        cmd.args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore::DeprecationWarning",
        ]);
        if let Some(select) = select {
            cmd.args(["-m", select]);
        }
        cmd.arg(root().join("python/tests"));
        cmd.env("PYTHONDONTWRITEBYTECODE", "1")
            .env("HAMT_TEST_KUBO_RPC", node.rpc_url())
            .env("HAMT_TEST_KUBO_GATEWAY", node.gateway_url())
            .env("HAMT_TEST_HAMT_BIN", target_dir().join("debug/hamt"))
            .env("HAMT_TEST_SCRATCH", scratch()?);
        s3.set_env(&mut cmd);
        if let Err(e) = run_pytest(&mut cmd, counts) {
            failures.push(format!("{}: {e}", python.display()));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// A directory for the tests' files under the target directory (sled databases, stores).
fn scratch() -> Result<PathBuf> {
    let dir = xtask_dir().join("pytest-scratch");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Runs pytest, passing its output through, and adds its closing line's counts.
fn run_pytest(cmd: &mut Command, counts: &mut Counts) -> Result<()> {
    let mut last = String::new();
    let result = run_lines(cmd, |line| {
        if line.contains(" passed") || line.contains(" failed") || line.contains(" error") {
            line.clone_into(&mut last);
        }
    });
    // "3 failed, 40 passed, 2 deselected in 12.3s"
    for part in last.split(',') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let n: u64 = n.trim_start_matches('=').trim().parse().unwrap_or(0);
        match what {
            "passed" => counts.passed += n,
            "failed" | "error" | "errors" => counts.failed += n,
            "skipped" => counts.skipped += n,
            _ => {}
        }
    }
    result
}

/// `cargo xtask bench python`: the extension in both venvs, the benchmark script in each
/// (every ratio within one venv), then one table. [`Build::Debug`] is CI's smoke run: the
/// debug extension the tests use (a release build of it takes ten minutes), so the benchmark's
/// code runs but its figures are not the extension's speed, and the table says so.
pub(crate) fn bench(quick: bool, build: Build) -> Result<()> {
    let [pyhamt, newest] = install(build)?;
    let script = root().join("python/bench/bench.py");
    let out = xtask_dir().join("bench-python");
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut results = Vec::new();
    for (python, name) in [(&pyhamt, "zarr-3.0.9"), (&newest, "zarr-newest")] {
        let json = out.join(format!("{name}.json"));
        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .arg("measure")
            .arg(&json)
            .arg(out.join(name))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONWARNINGS", "ignore")
            .env("HAMT_BENCH_BUILD", build.dir_name());
        if quick {
            cmd.arg("--quick");
        }
        run(&mut cmd)?;
        results.push(json);
    }
    report(&pyhamt, &script, &results)
}

/// The dask half of `cargo xtask bench versions`: the extension, then dask writes
/// through forks against icechunk's at 1, 2 and 4 workers on moto's S3 server (in the
/// newest venv, where icechunk installs).
pub(crate) fn dask_writes(quick: bool, build: Build) -> Result<()> {
    let [pyhamt, newest] = install(build)?;
    let s3 = S3Server::start(&pyhamt)?;
    let mut cmd = Command::new(&newest);
    cmd.arg(root().join("python/bench/dask_writes.py"))
        .arg(s3.endpoint())
        .arg(S3Server::BUCKET)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONWARNINGS", "ignore");
    s3.set_env(&mut cmd);
    if quick {
        cmd.arg("--quick");
    }
    run(&mut cmd)
}

fn report(python: &Path, script: &Path, results: &[PathBuf]) -> Result<()> {
    run(Command::new(python).arg(script).arg("report").args(results))
}
