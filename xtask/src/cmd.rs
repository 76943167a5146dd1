//! Running commands from the workspace root, and the paths they use.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else `target/` in the root.
pub(crate) fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// Where xtask keeps what it installs (venvs, the IPFS node): under the target directory.
pub(crate) fn xtask_dir() -> PathBuf {
    target_dir().join("xtask")
}

/// The cargo that runs us.
pub(crate) fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Removes from `cmd`'s environment the variables cargo set for running xtask itself
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, …). A build script that asks to rerun when one of
/// them changes (ring's does) would otherwise see them set under xtask and unset in a shell,
/// and every cargo run by xtask would rebuild ring and all that depends on it, then every
/// cargo run by hand would rebuild it again.
fn scrub(cmd: &mut Command) {
    const SET_BY_CARGO_RUN: [&str; 5] = [
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
    ];
    for (name, _) in env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_") || SET_BY_CARGO_RUN.contains(&name.as_ref()) {
            cmd.env_remove(name.as_ref());
        }
    }
}

/// Echoes `cmd`, cleans its environment ([`scrub`]) and returns when it starts, for [`took`].
fn starting(cmd: &mut Command) -> std::time::Instant {
    eprintln!("$ {cmd:?}");
    scrub(cmd);
    std::time::Instant::now()
}

/// Runs a command in the workspace root, echoing it; fails when it fails.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let started = starting(cmd);
    let status = cmd
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    took(cmd, started);
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

/// Runs a command in the workspace root, echoing it and passing its standard output through
/// line by line to `each` as well; fails when it fails.
pub(crate) fn run_lines(cmd: &mut Command, mut each: impl FnMut(&str)) -> Result<()> {
    use std::io::{BufRead as _, BufReader};
    use std::sync::mpsc::RecvTimeoutError;
    use std::time::{Duration, Instant};
    // How long the output may stay open once the command has exited: a process it started
    // and left behind (a test's server, after the test failed) must not hang the run.
    const GRACE: Duration = Duration::from_secs(10);
    let started = starting(cmd);
    let mut child = cmd
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let stdout = child.stdout.take().ok_or("the command has no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut exited = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                let line = line.map_err(|e| format!("reading the output of {cmd:?}: {e}"))?;
                println!("{line}");
                each(&line);
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                if exited.is_none() {
                    exited = child
                        .try_wait()
                        .map_err(|e| format!("waiting for {cmd:?}: {e}"))?
                        .map(|status| (status, Instant::now()));
                }
                if exited.is_some_and(|(_, at)| at.elapsed() > GRACE) {
                    eprintln!(
                        "xtask: {cmd:?} exited, but a process it started still holds its \
                         output; not waiting for it"
                    );
                    break;
                }
            }
        }
    }
    let status = match exited {
        Some((status, _)) => status,
        None => child
            .wait()
            .map_err(|e| format!("waiting for {cmd:?}: {e}"))?,
    };
    took(cmd, started);
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

/// Prints how long `cmd` took, program and arguments only, so that a CI log shows where its
/// time went.
fn took(cmd: &Command, started: std::time::Instant) {
    let program = Path::new(cmd.get_program());
    let name = program.file_name().unwrap_or(program.as_os_str());
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
    eprintln!(
        "xtask: {:.0} s: {} {}",
        started.elapsed().as_secs_f64(),
        name.to_string_lossy(),
        args.join(" ")
    );
}

/// Runs `cmd` and returns its standard output (standard error passes through).
pub(crate) fn output(cmd: &mut Command) -> Result<String> {
    let started = starting(cmd);
    let out = cmd
        .current_dir(root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    took(cmd, started);
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", out.status));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{cmd:?} printed non-UTF-8: {e}"))
}

/// The last line of `text` that is a JSON object, parsed; `what` names the command for errors.
pub(crate) fn json(text: &str, what: &str) -> Result<serde_json::Value> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or(text);
    serde_json::from_str(line).map_err(|e| format!("{what} printed no JSON result: {e}"))
}
