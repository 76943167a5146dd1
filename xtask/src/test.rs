//! `cargo xtask test`: the README's test command.

use std::process::Command;

use crate::Result;
use crate::cmd::{cargo, run_lines};
use crate::python::python_env;
use crate::services::{IpfsNode, S3Server, node_dir};

/// Prepares what the tests of `crates` (every crate when empty) need, runs them, and stops
/// the services again.
pub(crate) fn test(crates: &[String]) -> Result<()> {
    let python = python_env()?;
    let wants = |name: &str| crates.is_empty() || crates.iter().any(|c| c == name);
    // Started before the tests and stopped when this guard drops, even on failure.
    let python_ext = wants(crate::pyext::CRATE);
    let node = if wants("hamt-store-kubo")
        || wants("hamt-store-embedded")
        || wants("hamt-cli")
        || python_ext
    {
        Some(IpfsNode::start()?)
    } else {
        None
    };
    let s3 = if wants("hamt-store-s3")
        || wants("hamt-versions")
        || wants("hamt-cli")
        || wants("hamt-benches")
        || python_ext
    {
        Some(S3Server::start(&python)?)
    } else {
        None
    };
    let mut cmd = Command::new(cargo());
    cmd.arg("test");
    if crates.is_empty() {
        cmd.arg("--workspace");
    } else {
        for c in crates {
            cmd.args(["-p", c]);
        }
    }
    cmd.args(["--all-features", "--no-fail-fast"]);
    cmd.env("HAMT_TEST_PYTHON", &python);
    cmd.env("PYTHONWARNINGS", "ignore");
    if let Some(node) = &node {
        cmd.env("HAMT_TEST_KUBO_RPC", node.rpc_url());
        cmd.env("HAMT_TEST_KUBO_GATEWAY", node.gateway_url());
        // For tests that start and stop a node of their own.
        cmd.env("HAMT_TEST_IPFS_NODE_DIR", node_dir());
    }
    if let Some(s3) = &s3 {
        s3.set_env(&mut cmd);
    }
    if wants("hamt-gateway") {
        cmd.env("HAMT_TEST_HELIA_DIR", crate::helia::install()?);
    }
    let mut totals = Totals::default();
    let mut result = run_tests(&mut cmd, &mut totals);
    // Features stay additive: the registry without any backend refuses their schemes.
    if result.is_ok() && wants("hamt-registry") {
        result = run_tests(
            Command::new(cargo()).args(["test", "-p", "hamt-registry", "--no-default-features"]),
            &mut totals,
        );
    }
    let mut py = crate::pyext::Counts::default();
    if python_ext && let (Some(node), Some(s3)) = (&node, &s3) {
        let ran = crate::pyext::test(node, s3, &mut py);
        totals.passed += py.passed;
        totals.failed += py.failed;
        totals.ignored += py.skipped;
        result = result.and(ran);
    }
    drop(node);
    drop(s3);
    println!(
        "tests: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    result?;
    if totals.passed == 0 {
        return Err("no test ran".into());
    }
    Ok(())
}

/// Test counts, summed over `cargo test` runs.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

/// Runs `cargo test`, passing its output through, and adds every test binary's
/// `test result:` line to `totals`.
fn run_tests(cmd: &mut Command, totals: &mut Totals) -> Result<()> {
    run_lines(cmd, |line| {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let n: u64 = n.parse().unwrap_or(0);
            match what {
                "passed" => totals.passed += n,
                "failed" => totals.failed += n,
                "ignored" => totals.ignored += n,
                _ => {}
            }
        }
    })
}
