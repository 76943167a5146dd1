//! Running the `hamt` binary from tests, shared by the test files of this crate.

// Each test file uses the part it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// Runs `hamt --store STORE ARGS`.
pub(crate) fn hamt(store: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hamt"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("HAMT_STORE")
        .output()
        .unwrap()
}

/// Runs a command that must succeed; returns its standard output.
pub(crate) fn ok(store: &str, args: &[&str]) -> String {
    let out = hamt(store, args);
    assert!(
        out.status.success(),
        "hamt {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with `code` and say `message`, without a panic; returns
/// its standard error.
pub(crate) fn fails(store: &str, args: &[&str], code: i32, message: &str) -> String {
    let out = hamt(store, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "hamt {args:?}: {stderr}");
    assert!(
        stderr.contains(message),
        "hamt {args:?}: {stderr:?} lacks {message:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// The sample directory the README imports.
pub(crate) fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-data")
}

/// Every file under `dir` with its bytes, by relative path with `/`, sorted.
pub(crate) fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .replace('\\', "/");
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `hamt --store STORE serve` on a free loopback port, killed when dropped, so that a test
/// that fails leaves no server behind (one would hold the test runner's output open).
pub(crate) struct Served {
    /// The server process.
    pub(crate) child: Child,
    /// Where it listens.
    pub(crate) addr: std::net::SocketAddr,
}

impl Served {
    /// Starts the server and waits until it accepts connections.
    pub(crate) fn start(store: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hamt"))
            .args(["--store", store, "serve", "--listen", &addr.to_string()])
            .env_remove("HAMT_STORE")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let served = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "hamt serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        served
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
