//! `cargo xtask`: the project's automation, in Rust so that it needs nothing but cargo.
//!
//! - `cargo xtask test [CRATE...]` — prepares what the tests need (a Python ≥ 3.12 venv with
//!   py-hamt from PyPI) and runs the tests of the named crates, or of the whole workspace.
//! - `cargo xtask ci` — what `.ci/run` runs: format check, clippy with `-D warnings`, then
//!   `cargo xtask test`.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("python") => python_env().map(|py| println!("{}", py.display())),
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

const USAGE: &str =
    "usage: cargo xtask <test [CRATE...] | bench [core|gateway|kubo|zarr|s3] [--quick] | ci | python>
  test [CRATE...]  run the tests of the named crates (all when none is named), with the
                   Python peers and services they need
  bench [core|gateway|kubo|zarr|s3] [--quick]
                   core: benchmarks against fvm_ipld_hamt and py-hamt, and peak memory, as
                   one table of ratios; gateway: `hamt serve` against the JavaScript IPFS
                   node's gateway; kubo: KuboStore against py-hamt's KuboCAS on that node;
                   zarr: every chunk through HamtStore on sled, a directory store and
                   py-hamt; s3: S3Store against one object per block on moto's server
                   (--quick: a smoke run on small sizes)
  ci               cargo fmt --check, clippy -D warnings, `bench --quick`, `bench zarr
                   --quick`, then `test`
  python           create the py-hamt venv and print its interpreter";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Runs a command in the workspace root, echoing it; fails when it fails.
fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

fn ci() -> Result<()> {
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
    bench(&["--quick".to_owned()])?;
    bench_zarr(true)?;
    test(&[])
}

fn test(crates: &[String]) -> Result<()> {
    let python = python_env()?;
    let wants = |name: &str| crates.is_empty() || crates.iter().any(|c| c == name);
    // Started before the tests and stopped when this guard drops, even on failure.
    let node = if wants("hamt-store-kubo") || wants("hamt-store-embedded") || wants("hamt-cli") {
        Some(IpfsNode::start()?)
    } else {
        None
    };
    let s3 = if wants("hamt-store-s3") || wants("hamt-cli") || wants("hamt-benches") {
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
    cmd.arg("--all-features");
    cmd.env("HAMT_TEST_PYTHON", &python);
    cmd.env("PYTHONWARNINGS", "ignore");
    if let Some(node) = &node {
        cmd.env("HAMT_TEST_KUBO_RPC", node.rpc_url());
        cmd.env("HAMT_TEST_KUBO_GATEWAY", node.gateway_url());
        // For tests that start and stop a node of their own.
        cmd.env(
            "HAMT_TEST_IPFS_NODE_DIR",
            root().join("target/xtask/ipfs-node"),
        );
    }
    if let Some(s3) = &s3 {
        s3.set_env(&mut cmd);
    }
    let result = run_tests(&mut cmd);
    drop(node);
    drop(s3);
    result
}

/// moto's S3 server (from PyPI, in the xtask venv) on loopback with one bucket, in memory;
/// stopped when dropped.
struct S3Server {
    child: std::process::Child,
    port: u16,
}

impl S3Server {
    const BUCKET: &'static str = "hamt-test";

    fn start(python: &Path) -> Result<Self> {
        let bin = python.with_file_name("moto_server");
        let port = free_port()?;
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let server = Self { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
        // Ready when it answers; creating the bucket is the first request that must succeed.
        while server
            .request("PUT", &format!("/{}", Self::BUCKET))
            .is_err()
        {
            if std::time::Instant::now() > deadline {
                return Err("the S3 server did not start within 60 s".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        eprintln!(
            "xtask: S3 server (moto) on {} with bucket {}",
            server.endpoint(),
            Self::BUCKET
        );
        Ok(server)
    }

    /// One HTTP/1.1 request with an empty body; the status line must say 2xx.
    fn request(&self, method: &str, path: &str) -> Result<()> {
        use std::io::{Read as _, Write as _};
        let mut conn =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        write!(
            conn,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .map_err(|e| e.to_string())?;
        let mut reply = String::new();
        conn.read_to_string(&mut reply).map_err(|e| e.to_string())?;
        match reply.split_whitespace().nth(1) {
            Some(code) if code.starts_with('2') => Ok(()),
            other => Err(format!("{method} {path}: {other:?}")),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server for the tests, and credentials moto accepts (any will do).
    fn set_env(&self, cmd: &mut Command) {
        cmd.env("HAMT_TEST_S3_ENDPOINT", self.endpoint())
            .env("HAMT_TEST_S3_BUCKET", Self::BUCKET)
            .env("AWS_ACCESS_KEY_ID", "hamt-test")
            .env("AWS_SECRET_ACCESS_KEY", "hamt-test-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ALLOW_HTTP", "true");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback (bound, then released for the service to take).
fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// The JavaScript IPFS node (npm `ipfs`, pinned in xtask/ipfs-node) on loopback, offline,
/// with a temporary repo; stopped by SIGTERM when dropped.
struct IpfsNode {
    child: std::process::Child,
    api: u16,
    gateway: u16,
    repo: PathBuf,
}

impl IpfsNode {
    fn start() -> Result<Self> {
        let dir = root().join("target/xtask/ipfs-node");
        let source = root().join("xtask/ipfs-node");
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let lock = fs::read_to_string(source.join("package-lock.json"))
            .map_err(|e| format!("xtask/ipfs-node/package-lock.json: {e}"))?;
        for file in ["package.json", "package-lock.json", "node.mjs"] {
            let to = dir.join(file);
            let _ = fs::remove_file(&to);
            fs::copy(source.join(file), &to).map_err(|e| format!("copy {file}: {e}"))?;
        }
        let stamp = dir.join("node_modules/.installed-lock");
        if fs::read_to_string(&stamp).ok().as_deref() != Some(lock.as_str()) {
            eprintln!("xtask: installing the IPFS test node from npm (a few minutes, once)");
            // `npm ci` refuses this lockfile (an optional git dependency); install follows it.
            run(Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--omit-lockfile-registry-resolved",
                    "--prefix",
                ])
                .arg(&dir))?;
            fs::write(&stamp, &lock).map_err(|e| format!("{}: {e}", stamp.display()))?;
        }
        let (api, gateway) = (free_port()?, free_port()?);
        let repo = std::env::temp_dir().join(format!("hamt-ipfs-repo-{}", std::process::id()));
        let _ = fs::remove_dir_all(&repo);
        let child = Command::new("node")
            .arg(dir.join("node.mjs"))
            .arg(&repo)
            .arg(api.to_string())
            .arg(gateway.to_string())
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start node (Node.js is required): {e}"))?;
        let node = Self {
            child,
            api,
            gateway,
            repo,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while std::net::TcpStream::connect(("127.0.0.1", gateway)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", api)).is_err()
        {
            if std::time::Instant::now() > deadline {
                return Err("the IPFS test node did not start within 90 s".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        eprintln!(
            "xtask: IPFS test node on {} (gateway {})",
            node.rpc_url(),
            node.gateway_url()
        );
        Ok(node)
    }

    fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api)
    }

    fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway)
    }
}

impl Drop for IpfsNode {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.repo);
    }
}

/// Runs `cargo test`, passing its output through, and ends with one line totalling every
/// test binary's `test result:` line.
fn run_tests(cmd: &mut Command) -> Result<()> {
    use std::io::{BufRead as _, BufReader};
    eprintln!("$ {cmd:?}");
    let mut child = cmd
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let stdout = child.stdout.take().ok_or("cargo test has no stdout")?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading cargo test output: {e}"))?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(what), Some(n)) = (words.next(), words.next()) else {
                    continue;
                };
                let n: u64 = n.parse().unwrap_or(0);
                match what {
                    "passed" => passed += n,
                    "failed" => failed += n,
                    "ignored" => ignored += n,
                    _ => {}
                }
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for cargo test: {e}"))?;
    println!("tests: {passed} passed, {failed} failed, {ignored} skipped");
    if status.success() && passed > 0 {
        Ok(())
    } else if status.success() {
        Err("no test ran".into())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

/// The interpreter of a venv holding the pinned Python peers, created on first use.
fn python_env() -> Result<PathBuf> {
    let dir = root().join("target/xtask/venv");
    let python = dir.join("bin/python");
    let requirements = root().join("xtask/requirements.txt");
    let wanted = fs::read_to_string(&requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    let stamp = dir.join("installed-requirements.txt");
    if python.exists() && fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return Ok(python);
    }
    let base = find_python312()?;
    eprintln!("xtask: creating {} with {}", dir.display(), base.display());
    let _ = fs::remove_dir_all(&dir);
    run(Command::new(&base).arg("-m").arg("venv").arg(&dir))?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements))?;
    fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(python)
}

/// py-hamt 3.6 needs Python ≥ 3.12; Debian's python3 may be older, so look further: the
/// `HAMT_PYTHON` variable, `python3.1x` on PATH, then pyenv's interpreters.
fn find_python312() -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = env::var_os("HAMT_PYTHON") {
        candidates.push(p.into());
    }
    for minor in (12..=15).rev() {
        candidates.push(format!("python3.{minor}").into());
    }
    candidates.push("python3".into());
    let pyenv_root = env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")));
    if let Some(versions) = pyenv_root.map(|r| r.join("versions"))
        && let Ok(entries) = fs::read_dir(&versions)
    {
        {
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path().join("bin/python3")))
                .collect();
            found.sort();
            candidates.extend(found.into_iter().rev());
        }
    }
    for candidate in &candidates {
        let ok = Command::new(candidate)
            .args([
                "-c",
                "import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)",
            ])
            .env_remove("PYENV_VERSION")
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(candidate.clone());
        }
    }
    Err("no Python >= 3.12 found (py-hamt needs it): install one (e.g. with pyenv) or set HAMT_PYTHON to its path".into())
}

/// Runs `cmd` and returns its standard output (standard error passes through).
fn output(cmd: &mut Command) -> Result<String> {
    eprintln!("$ {cmd:?}");
    let out = cmd
        .current_dir(root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", out.status));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{cmd:?} printed non-UTF-8: {e}"))
}

fn json(text: &str, what: &str) -> Result<serde_json::Value> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or(text);
    serde_json::from_str(line).map_err(|e| format!("{what} printed no JSON result: {e}"))
}

/// The benchmarks of issue 3 in one run: our HAMT against `fvm_ipld_hamt` (criterion, same
/// process), against py-hamt (same data, same machine, same run), and peak memory of a bulk
/// load; then one table of ratios. Speed is reported, never asserted.
fn bench(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    match args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(String::as_str)
    {
        None | Some("core") => {}
        Some("gateway") => return bench_gateway(quick),
        Some("kubo") => return bench_kubo(quick),
        Some("zarr") => return bench_zarr(quick),
        Some("s3") => return bench_s3(quick),
        Some(other) => {
            return Err(format!(
                "unknown benchmark {other:?}: core, gateway, kubo, zarr or s3"
            ));
        }
    }
    let python = python_env()?;
    let out_dir = root().join("target/hamt-bench");
    fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let compare_out = out_dir.join("compare.json");
    let mut cmd = Command::new(cargo());
    cmd.args(["bench", "-p", "hamt-benches", "--bench", "compare"]);
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
    let rss_run = |layout: &str| -> Result<serde_json::Value> {
        json(
            &output(bench_bin("rss").args([&rss_n.to_string(), "64", "memory", layout]))?,
            "rss",
        )
    };
    let rss = [rss_run("blocks")?, rss_run("inline")?];

    report(&compare, &py, py_n, &rss, rss_n)
}

/// `cargo xtask bench gateway`: this project's gateway (`hamt serve` over sled) against the
/// JavaScript IPFS node's gateway on the same raw blocks, same run.
fn bench_gateway(quick: bool) -> Result<()> {
    let hamt = root().join("target/release/hamt");
    let requests = if quick { "300" } else { "3000" };
    run_with_node(
        "gateway_load",
        requests,
        &[("HAMT_BENCH_HAMT_BIN", hamt.into())],
    )
}

/// `cargo xtask bench kubo`: `KuboStore` against py-hamt's `KuboCAS` on the same IPFS node.
fn bench_kubo(quick: bool) -> Result<()> {
    let python = python_env()?;
    let n = if quick { "500" } else { "10000" };
    run_with_node("kubo_load", n, &[("HAMT_BENCH_PYTHON", python.into())])
}

/// `cargo xtask bench s3`: `S3Store` against one object per block on moto's S3 server.
fn bench_s3(quick: bool) -> Result<()> {
    let python = python_env()?;
    run(Command::new(cargo()).args([
        "build",
        "-q",
        "--release",
        "-p",
        "hamt-benches",
        "--bin",
        "s3_load",
    ]))?;
    let server = S3Server::start(&python)?;
    let mut cmd = Command::new(root().join("target/release/s3_load"));
    cmd.arg(if quick { "500" } else { "20000" });
    server.set_env(&mut cmd);
    let result = run(&mut cmd);
    drop(server);
    result
}

/// `cargo xtask bench zarr`: every chunk of a ≥ 1000-chunk dataset through `HamtStore` on
/// sled against a plain directory store, and py-hamt + zarr-python on the same HAMT.
fn bench_zarr(quick: bool) -> Result<()> {
    let python = python_env()?;
    let mut cmd = bench_bin("zarr_read");
    if quick {
        cmd.arg("--quick");
    }
    run(cmd.env("HAMT_BENCH_PYTHON", python))
}

/// `cargo run` of the release benchmark binary `bin`, ready for its arguments.
fn bench_bin(bin: &str) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.args([
        "run",
        "-q",
        "--release",
        "-p",
        "hamt-benches",
        "--bin",
        bin,
        "--",
    ]);
    cmd
}

/// Builds the release `hamt` and benchmark binary `bin`, starts the IPFS test node and runs
/// `bin ARG` with the node's URLs (`HAMT_BENCH_KUBO_RPC`, `HAMT_BENCH_KUBO_GATEWAY`) and `env`.
fn run_with_node(bin: &str, arg: &str, env: &[(&str, OsString)]) -> Result<()> {
    run(Command::new(cargo()).args([
        "build",
        "-q",
        "--release",
        "-p",
        "hamt-cli",
        "-p",
        "hamt-benches",
        "--bin",
        "hamt",
        "--bin",
        bin,
    ]))?;
    let node = IpfsNode::start()?;
    let mut cmd = Command::new(root().join("target/release").join(bin));
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
            "peak RSS, insert+flush of {rss_n} keys, 64 MiB node cache, MemoryStore, {}: {:.1} MiB \
             (tree and store {:.1} MiB before the flush) in {:.2} s",
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
