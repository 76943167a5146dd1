//! `cargo xtask bench`: each benchmark against a peer measured in the same run, printed as
//! ratios. Speed is reported, never asserted.
//!
//! `--debug` builds everything in the dev profile the tests use: CI's smoke runs, where the
//! code must run but a release build of the workspace would cost more than every test.

use std::ffi::OsString;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Result;
use crate::cmd::{cargo, json, output, root, run, target_dir};
use crate::python::python_env;
use crate::services::{IpfsNode, S3Server};

/// The benchmarks of issue 3 in one run: our HAMT against `fvm_ipld_hamt` (criterion, same
/// process), against py-hamt (same data, same machine, same run), and peak memory of a bulk
/// load; then one table of ratios. Speed is reported, never asserted.
pub(crate) fn bench(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let build = if args.iter().any(|a| a == "--debug") {
        Build::Debug
    } else {
        Build::Release
    };
    build.banner();
    match args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(String::as_str)
    {
        None | Some("core") => {}
        Some("gateway") => return bench_gateway(quick, build),
        Some("kubo") => return bench_kubo(quick, build),
        Some("zarr") => return bench_zarr(quick, build),
        Some("s3") => return bench_s3(quick, build),
        Some("net") => return bench_net(quick, build),
        Some("versions") => return bench_versions(quick, build),
        Some("python") => return crate::pyext::bench(quick, build),
        Some(other) => {
            return Err(format!(
                "unknown benchmark {other:?}: core, gateway, kubo, zarr, s3, net, versions or python"
            ));
        }
    }
    let python = python_env()?;
    let out_dir = target_dir().join("hamt-bench");
    fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let compare_out = out_dir.join("compare.json");
    let mut cmd = Command::new(cargo());
    cmd.args(["bench", "--profile", build.profile()]);
    match build {
        Build::Release => cmd.args(["-p", "hamt-benches"]),
        Build::Debug => cmd.args(TESTS_FEATURES),
    };
    cmd.args(["--bench", "compare"]);
    cmd.env("HAMT_BENCH_OUT", &compare_out);
    if quick {
        cmd.env("HAMT_BENCH_QUICK", "1");
    }
    run(&mut cmd)?;
    let compare: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(&compare_out).map_err(|e| format!("{}: {e}", compare_out.display()))?,
    )
    .map_err(|e| format!("{}: {e}", compare_out.display()))?;

    let py_n = if quick { 2_000 } else { 100_000 };
    let py = json(
        &output(
            Command::new(&python)
                .arg(root().join("benches/pyhamt_bench.py"))
                .arg(py_n.to_string())
                .env("PYTHONWARNINGS", "ignore"),
        )?,
        "pyhamt_bench.py",
    )?;

    let rss_n = if quick { 20_000 } else { 1_000_000 };
    // Peak memory of a bulk load in each layout, each in a process of its own.
    let rss_run = |store: &str, layout: &str| -> Result<serde_json::Value> {
        json(
            &output(bench_bin("rss", build)?.args([&rss_n.to_string(), "64", store, layout]))?,
            "rss",
        )
    };
    let rss = [
        rss_run("memory", "blocks")?,
        rss_run("memory", "inline")?,
        rss_run("sled", "blocks")?,
        rss_run("sled", "inline")?,
    ];

    report(&compare, &py, py_n, &rss, rss_n)?;
    large_value(quick, build)
}

/// Peak memory of the `hamt` command on one large value (target: under 1.5× its size).
fn large_value(quick: bool, build: Build) -> Result<()> {
    build.bins(&[("hamt-cli", "hamt")])?;
    println!();
    run(bench_bin("large_value", build)?
        .arg(if quick { "16" } else { "200" })
        .env("HAMT_BENCH_HAMT_BIN", build.bin("hamt")))
}

/// `cargo xtask bench gateway`: this project's gateway (`hamt serve` over sled) against the
/// JavaScript IPFS node's gateway on the same raw blocks, same run; then `hamt serve` under
/// attack (stalled CAR readers, half-sent requests) against itself unloaded.
fn bench_gateway(quick: bool, build: Build) -> Result<()> {
    let hamt = build.bin("hamt");
    let requests = if quick { "300" } else { "3000" };
    run_with_node(
        "gateway_load",
        requests,
        build,
        &[("HAMT_BENCH_HAMT_BIN", hamt.clone().into())],
    )?;
    build.bins(&[("hamt-benches", "gateway_attack")])?;
    let mut cmd = Command::new(build.bin("gateway_attack"));
    if quick {
        cmd.arg("--quick");
    }
    run(cmd.env("HAMT_BENCH_HAMT_BIN", hamt))
}

/// `cargo xtask bench versions`: a three-way merge of two roots against rebuilding the
/// merged map, and `log` over a long history.
fn bench_versions(quick: bool, build: Build) -> Result<()> {
    run(bench_bin("versions", build)?
        .arg(if quick { "20000" } else { "1000000" })
        .arg(if quick { "100" } else { "1000" }))?;
    crate::pyext::dask_writes(quick, build)
}

/// `cargo xtask bench kubo`: `KuboStore` against py-hamt's `KuboCAS` on the same IPFS node.
fn bench_kubo(quick: bool, build: Build) -> Result<()> {
    let python = python_env()?;
    let n = if quick { "500" } else { "10000" };
    run_with_node(
        "kubo_load",
        n,
        build,
        &[("HAMT_BENCH_PYTHON", python.into())],
    )
}

/// `cargo xtask bench s3`: `S3Store` against one object per block on moto's S3 server.
fn bench_s3(quick: bool, build: Build) -> Result<()> {
    let python = python_env()?;
    build.bins(&[("hamt-benches", "s3_load")])?;
    let server = S3Server::start(&python)?;
    let mut cmd = Command::new(build.bin("s3_load"));
    cmd.arg(if quick { "500" } else { "20000" });
    server.set_env(&mut cmd);
    let result = run(&mut cmd);
    drop(server);
    result
}

/// `cargo xtask bench zarr`: every chunk of a ≥ 1000-chunk dataset through `HamtStore` on
/// sled against a plain directory store, and py-hamt + zarr-python on the same HAMT.
pub(crate) fn bench_zarr(quick: bool, build: Build) -> Result<()> {
    let python = python_env()?;
    let mut cmd = bench_bin("zarr_read", build)?;
    if quick {
        cmd.arg("--quick");
    }
    run(cmd.env("HAMT_BENCH_PYTHON", python))
}

/// `cargo xtask bench net`: reads of a ≥ 1000-chunk dataset from `hamt serve` behind the
/// loopback proxy (delay each way, a 200 Mbit/s cap) at several round-trip times: ours with
/// CAR fetches and block by block against py-hamt's `KuboCAS`, each beside the link's floor.
pub(crate) fn bench_net(quick: bool, build: Build) -> Result<()> {
    let python = python_env()?;
    build.bins(&[("hamt-cli", "hamt"), ("hamt-benches", "net_read")])?;
    let mut cmd = Command::new(build.bin("net_read"));
    if quick {
        cmd.arg("--quick");
    }
    run(cmd
        .env("HAMT_BENCH_PYTHON", python)
        .env("HAMT_BENCH_HAMT_BIN", build.bin("hamt")))
}

/// What `cargo xtask test` selects: every package, every feature. Builds given the same
/// selection resolve the same features, so they share every compiled dependency.
pub(crate) const TESTS_FEATURES: [&str; 2] = ["--workspace", "--all-features"];

/// Which profile a benchmark run builds with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Build {
    /// The release profile: the figures are the product's speed.
    Release,
    /// The dev profile the tests build: a smoke run whose figures say nothing of speed.
    Debug,
}

impl Build {
    /// Cargo's name of the profile.
    pub(crate) fn profile(self) -> &'static str {
        match self {
            Build::Release => "release",
            Build::Debug => "dev",
        }
    }

    /// The name of this profile's output directory, as the figures' headings name the build.
    pub(crate) fn dir_name(self) -> &'static str {
        match self {
            Build::Release => "release",
            Build::Debug => "debug",
        }
    }

    /// The binary `name` in this profile's output directory.
    fn bin(self, name: &str) -> PathBuf {
        target_dir().join(self.dir_name()).join(name)
    }

    /// Says, before any figure, that a debug run's figures are not the product's speed.
    fn banner(self) {
        if self == Build::Debug {
            println!("DEBUG BUILD: a smoke run; its figures say nothing of the release speed.");
        }
    }

    /// Builds binaries in this profile, each named with its package. A debug build builds
    /// what `cargo xtask test` builds (every target, every feature), so that the tests that
    /// run next reuse it instead of compiling half the dependencies again with other features;
    /// as that holds every binary, it runs once per xtask process.
    pub(crate) fn bins(self, bins: &[(&str, &str)]) -> Result<()> {
        static DEBUG_BUILT: AtomicBool = AtomicBool::new(false);
        let mut cmd = Command::new(cargo());
        cmd.args(["build", "-q", "--profile", self.profile()]);
        match self {
            Build::Release => {
                for (package, bin) in bins {
                    cmd.args(["-p", package, "--bin", bin]);
                }
            }
            Build::Debug if DEBUG_BUILT.load(Ordering::Acquire) => return Ok(()),
            Build::Debug => {
                cmd.args(TESTS_FEATURES).arg("--all-targets");
            }
        }
        run(&mut cmd)?;
        if self == Build::Debug {
            DEBUG_BUILT.store(true, Ordering::Release);
        }
        Ok(())
    }
}

/// The benchmark binary `bin`, built in `build`'s profile, ready for its arguments.
fn bench_bin(bin: &str, build: Build) -> Result<Command> {
    build.bins(&[("hamt-benches", bin)])?;
    Ok(Command::new(build.bin(bin)))
}

/// Builds `hamt` and the benchmark binary `bin`, starts the IPFS test node and runs `bin ARG`
/// with the node's URLs (`HAMT_BENCH_KUBO_RPC`, `HAMT_BENCH_KUBO_GATEWAY`) and `env`.
fn run_with_node(bin: &str, arg: &str, build: Build, env: &[(&str, OsString)]) -> Result<()> {
    build.bins(&[("hamt-cli", "hamt"), ("hamt-benches", bin)])?;
    let node = IpfsNode::start()?;
    let mut cmd = Command::new(build.bin(bin));
    cmd.arg(arg)
        .env("HAMT_BENCH_KUBO_RPC", node.rpc_url())
        .env("HAMT_BENCH_KUBO_GATEWAY", node.gateway_url());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let result = run(&mut cmd);
    drop(node);
    result
}

/// Prints the table of ratios; fails when our root differs from py-hamt's for the same data.
fn report(
    compare: &serde_json::Value,
    py: &serde_json::Value,
    py_n: usize,
    rss: &[serde_json::Value],
    rss_n: usize,
) -> Result<()> {
    println!();
    println!("ours: py-hamt's format, each value its own block; inline: values of up to 64 bytes");
    println!("inlined in the nodes as identity CIDs (Config::inline_values), fvm's layout.");
    println!(
        "{:<40} {:>10} {:>10} {:>10} {:>9} {:>11}",
        "workload (in-memory store)", "ours ms", "inline ms", "fvm ms", "ours/fvm", "inline/fvm"
    );
    let rows = compare["rows"].as_array().cloned().unwrap_or_default();
    let or_dash = |v: &serde_json::Value, scale: f64| {
        v.as_f64()
            .map_or_else(|| "-".to_owned(), |x| format!("{:.2}", x * scale))
    };
    for row in &rows {
        println!(
            "{:<40} {:>10.2} {:>10} {:>10.2} {:>9.2} {:>11}",
            row["workload"].as_str().unwrap_or("?"),
            row["ours_s"].as_f64().unwrap_or(f64::NAN) * 1e3,
            or_dash(&row["inline_s"], 1e3),
            row["fvm_s"].as_f64().unwrap_or(f64::NAN) * 1e3,
            row["ratio"].as_f64().unwrap_or(f64::NAN),
            or_dash(&row["inline_ratio"], 1.0),
        );
    }
    let ours = |workload: &str| {
        rows.iter()
            .find(|r| r["workload"] == workload)
            .and_then(|r| r["ours_s"].as_f64())
    };
    println!();
    println!(
        "{:<44} {:>12} {:>12} {:>9}",
        "py-hamt 3.6 (same keys and values)", "ours ms", "py ms", "py/ours"
    );
    for (op, py_key) in [
        ("insert+flush", "insert_flush_s"),
        ("get-all cold", "get_all_cold_s"),
    ] {
        let name = format!("{op} n={py_n} value=8B");
        let (Some(a), Some(b)) = (ours(&name), py[py_key].as_f64()) else {
            return Err(format!("no measurement for {name}"));
        };
        println!(
            "{name:<44} {:>12.2} {:>12.2} {:>9.1}",
            a * 1e3,
            b * 1e3,
            b / a
        );
    }
    let our_root = compare["roots"]
        .as_array()
        .and_then(|r| r.iter().find(|x| x["n"] == py_n && x["value_len"] == 8))
        .map(|x| x["root"].clone());
    let same_root = our_root.as_ref() == Some(&py["root"]);
    println!(
        "root CID for n={py_n}: {} ({})",
        py["root"].as_str().unwrap_or("?"),
        if same_root {
            "identical in both"
        } else {
            "DIFFERS"
        }
    );
    println!();
    for run in rss {
        println!(
            "peak RSS, insert+flush of {rss_n} keys, 64 MiB node cache, {}, {}: {:.1} MiB \
             (tree and store {:.1} MiB before the flush) in {:.2} s",
            run["store"].as_str().unwrap_or("?"),
            if run["inline"].as_bool() == Some(true) {
                "values inline"
            } else {
                "value blocks"
            },
            run["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
            run["rss_before_flush_mib"].as_f64().unwrap_or(f64::NAN),
            run["seconds"].as_f64().unwrap_or(f64::NAN),
        );
    }
    if same_root {
        Ok(())
    } else {
        Err("our root differs from py-hamt's for the same data".into())
    }
}
