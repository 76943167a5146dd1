//! `cargo xtask fuzz [TARGET] [--time SECONDS]`: the cargo-fuzz targets of `fuzz/`, on a seed
//! corpus that the project's own code writes.
//!
//! cargo-fuzz is installed from crates.io once, into `target/xtask/cargo-fuzz`. The targets
//! are built with `-s none`: no sanitizer, as only the stable toolchain is available, and
//! Rust code outside `unsafe` needs none to find panics, overflows (debug assertions are on)
//! and failed checks. The address sanitizer would need the nightly-only `-Zsanitizer=address`; see
//! `fuzz/README.md` for what `RUSTC_BOOTSTRAP=1` gives here.
//!
//! Each run first writes the seeds (`fuzz/src/seeds.rs`: real nodes, CARs, shards, manifests,
//! metadata scripts, requests) into `target/fuzz-corpus/TARGET/`, where the inputs a run finds
//! are kept for the next one; crashes go to `target/fuzz-artifacts/TARGET/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::Result;
use crate::cmd::{cargo, output, root, run, target_dir, xtask_dir};

/// The targets, in the order they run.
pub(crate) const TARGETS: [&str; 7] = [
    "node", "tree", "car", "sharded", "metadata", "gateway", "ops",
];

/// The cargo-fuzz release installed (pinned, so that every machine builds the same way).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Seconds each target runs in `cargo xtask checks`.
pub(crate) const CHECK_SECONDS: u64 = 15;

/// Seconds each target runs when `--time` is not given.
const DEFAULT_SECONDS: u64 = 60;

/// `cargo xtask fuzz [TARGET] [--time SECONDS]`: builds the targets and runs the named one
/// (every one, one after the other, when none is named) for that long.
pub(crate) fn fuzz(args: &[String]) -> Result<()> {
    let mut seconds = DEFAULT_SECONDS;
    let mut only = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--time" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--time takes a number of seconds")?;
            }
            t if TARGETS.contains(&t) => only = Some(t),
            other => {
                return Err(format!(
                    "unknown fuzz target {other:?}: {}",
                    TARGETS.join(", ")
                ));
            }
        }
    }
    let fuzz = Fuzz::build()?;
    match only {
        Some(target) => fuzz.run(&[target], seconds),
        None => fuzz.run(&TARGETS, seconds),
    }
}

/// The fuzz steps of `cargo xtask checks`: the `fuzz` crate (a workspace of its own, so not
/// in the workspace's fmt and clippy) formatted and clippy-clean, then every target for
/// [`CHECK_SECONDS`], two at a time (the machine has two cores).
pub(crate) fn check() -> Result<()> {
    let manifest = root().join("fuzz").join("Cargo.toml");
    run(Command::new(cargo())
        .args(["fmt", "--check", "--manifest-path"])
        .arg(&manifest))?;
    // The workspace's target directory: most dependencies are already built there.
    run(Command::new(cargo())
        .args(["clippy", "--all-targets", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir())
        .args(["--", "-D", "warnings"]))?;
    let fuzz = Fuzz::build()?;
    for pair in TARGETS.chunks(2) {
        fuzz.run(pair, CHECK_SECONDS)?;
    }
    Ok(())
}

/// Built targets and where their inputs and outputs go.
struct Fuzz {
    /// The directory of the built binaries.
    bin: PathBuf,
    corpus: PathBuf,
    artifacts: PathBuf,
}

impl Fuzz {
    /// Installs cargo-fuzz if needed, builds every target and writes the seed corpus.
    fn build() -> Result<Fuzz> {
        let cargo_fuzz = install_cargo_fuzz()?;
        let host = host_triple()?;
        let build_dir = target_dir().join("fuzz");
        // Release (cargo-fuzz's default: one codegen unit) with debug assertions and
        // overflow checks. 16 codegen units took as much CPU time to build from scratch and
        // ran a fifth slower (fuzz/README.md has the measurements).
        run(Command::new(&cargo_fuzz)
            .args([
                "fuzz",
                "build",
                "--fuzz-dir",
                "fuzz",
                "-s",
                "none",
                "--debug-assertions",
            ])
            .args(["--target", &host])
            .arg("--target-dir")
            .arg(&build_dir)
            .env("CARGO", cargo()))?;
        let fuzz = Fuzz {
            bin: build_dir.join(&host).join("release"),
            corpus: target_dir().join("fuzz-corpus"),
            artifacts: target_dir().join("fuzz-artifacts"),
        };
        run(Command::new(fuzz.bin.join("seeds")).arg(&fuzz.corpus))?;
        Ok(fuzz)
    }

    /// Runs `targets` at the same time, each for `seconds`; fails naming each that crashed.
    fn run(&self, targets: &[&str], seconds: u64) -> Result<()> {
        let mut running: Vec<(&str, Child, PathBuf)> = Vec::new();
        for &target in targets {
            let artifacts = self.artifacts.join(target);
            fs::create_dir_all(&artifacts).map_err(|e| format!("{}: {e}", artifacts.display()))?;
            let log = self.artifacts.join(format!("{target}.log"));
            let log_file = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let mut cmd = Command::new(self.bin.join(target));
            cmd.arg(self.corpus.join(target))
                .arg(format!("-max_total_time={seconds}"))
                .arg(format!("-artifact_prefix={}/", artifacts.display()))
                .arg("-print_final_stats=1")
                .current_dir(root())
                .stdout(
                    log_file
                        .try_clone()
                        .map_err(|e| format!("{}: {e}", log.display()))?,
                )
                .stderr(log_file);
            eprintln!("$ {cmd:?}");
            let child = cmd
                .spawn()
                .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
            running.push((target, child, log));
        }
        let mut failed = Vec::new();
        for (target, mut child, log) in running {
            let status = child
                .wait()
                .map_err(|e| format!("fuzz target {target}: {e}"))?;
            let text = fs::read_to_string(&log).unwrap_or_default();
            println!("fuzz {target}: {}", summary(&text));
            if !status.success() {
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                for line in tail.into_iter().rev() {
                    eprintln!("  {line}");
                }
                failed.push(format!(
                    "{target} ({status}; log {}, inputs in {})",
                    log.display(),
                    self.artifacts.join(target).display()
                ));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "fuzz targets failed: {}; rerun one input with {}/TARGET FILE",
                failed.join(", "),
                self.bin.display()
            ))
        }
    }
}

/// One line from libFuzzer's output: executions, rate, coverage, corpus.
fn summary(log: &str) -> String {
    let stat = |name: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .map_or("?", str::trim)
            .to_owned()
    };
    let last = log
        .lines()
        .rev()
        .find(|l| l.starts_with('#') && l.contains("cov:"))
        .unwrap_or_default();
    let field = |name: &str| {
        last.split_whitespace()
            .skip_while(|w| *w != name)
            .nth(1)
            .unwrap_or("?")
            .to_owned()
    };
    format!(
        "{} executions, {} exec/s, coverage {} edges ({} features), corpus {}",
        stat("number_of_executed_units"),
        stat("average_exec_per_sec"),
        field("cov:"),
        field("ft:"),
        field("corp:"),
    )
}

/// The cargo-fuzz binary, installed from crates.io into `target/xtask/cargo-fuzz` once.
fn install_cargo_fuzz() -> Result<PathBuf> {
    let dir = xtask_dir().join("cargo-fuzz");
    let bin = dir.join("bin").join("cargo-fuzz");
    if !is_version(&bin) {
        run(Command::new(cargo())
            .args(["install", "cargo-fuzz", "--locked", "--version"])
            .arg(CARGO_FUZZ_VERSION)
            .arg("--root")
            .arg(&dir))?;
    }
    Ok(bin)
}

/// True when `bin` is the pinned cargo-fuzz.
fn is_version(bin: &Path) -> bool {
    bin.exists()
        && Command::new(bin)
            .args(["fuzz", "--version"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION))
}

/// The host's target triple, where cargo-fuzz puts the binaries.
fn host_triple() -> Result<String> {
    let info = output(Command::new("rustc").arg("-vV"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV names no host".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_reads_libfuzzers_final_lines() {
        let log = "#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #2048\tDONE   cov: 2132 ft: 4528 corp: 219/334Kb lim: 10016 exec/s: 13085 rss: 32Mb\n\
                   Done 2048 runs in 1 second(s)\n\
                   stat::number_of_executed_units: 2048\n\
                   stat::average_exec_per_sec:     13085\n";
        assert_eq!(
            summary(log),
            "2048 executions, 13085 exec/s, coverage 2132 edges (4528 features), corpus 219/334Kb"
        );
    }
}
