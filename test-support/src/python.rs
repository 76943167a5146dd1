//! The real Python peers, from the venv `cargo xtask test` makes.

/// Runs the Python peer `script` (real py-hamt from PyPI) with `args`, feeding it `stdin`,
/// and returns what it printed. The interpreter comes from `HAMT_TEST_PYTHON`, which
/// `cargo xtask test` sets to its venv; without it this panics, so interop tests fail rather
/// than pass silently.
///
/// # Panics
/// When the interpreter is not set or the script fails (with the script's standard error).
pub fn run_python_peer(script: &std::path::Path, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let python = crate::required_env("HAMT_TEST_PYTHON");
    let mut child = Command::new(python)
        .env("PYTHONWARNINGS", "ignore")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the py-hamt peer");
    // The pipe closes when this statement ends, so the peer sees end of input.
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), stdin) {
        pipe.write_all(input).expect("write to the py-hamt peer");
    }
    let out = child.wait_with_output().expect("wait for the py-hamt peer");
    assert!(
        out.status.success(),
        "py-hamt peer {} failed: {args:?}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
