//! Peak memory of the `hamt` command on one large value: `import` of a directory holding one
//! file of SIZE MiB into a sled store, `get` of it, and `stat` of the map. Each command runs
//! as a child of its own; its peak RSS comes from the kernel's accounting of waited-for
//! children (`getrusage(RUSAGE_CHILDREN)`), so each phase runs in a fresh process of this
//! binary (`--phase`). The figure that matters is the peak over the value's size (target:
//! under 1.5: a value held in memory at most once).
//!
//! `HAMT_BENCH_HAMT_BIN=target/release/hamt large_value [SIZE_MIB]`

use std::path::Path;
use std::process::{Command, Stdio};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn hamt_bin() -> Result<String> {
    std::env::var("HAMT_BENCH_HAMT_BIN")
        .map_err(|_| "HAMT_BENCH_HAMT_BIN is not set: run with `cargo xtask bench`".into())
}

/// Runs one `hamt` command and prints its peak RSS in KiB; its stdout goes to `out`.
fn phase(store: &str, args: &[String], out: &Path) -> Result<()> {
    let status = Command::new(hamt_bin()?)
        .arg("--store")
        .arg(store)
        .args(args)
        .stdout(std::fs::File::create(out)?)
        .stderr(Stdio::inherit())
        .status()?;
    if !status.success() {
        return Err(format!("hamt {args:?} failed: {status}").into());
    }
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    // Linux reports the maximum resident set size in KiB.
    println!("{}", usage.max_rss());
    Ok(())
}

/// Runs `--phase` in a fresh process of this binary, returning the peak RSS in MiB.
fn measured(store: &str, args: &[&str], out: &Path) -> Result<f64> {
    let me = std::env::current_exe()?;
    let result = Command::new(me)
        .args(["--phase", store, &out.display().to_string()])
        .args(args)
        .stderr(Stdio::inherit())
        .output()?;
    if !result.status.success() {
        return Err(format!("phase {args:?} failed").into());
    }
    let kib: f64 = String::from_utf8(result.stdout)?.trim().parse()?;
    Ok(kib / 1024.0)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--phase") {
        let [_, store, out, rest @ ..] = args.as_slice() else {
            return Err("--phase STORE OUT ARGS…".into());
        };
        return phase(store, rest, Path::new(out));
    }
    let mib: usize = args.first().map_or(Ok(200), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("input");
    std::fs::create_dir(&input)?;
    // Bytes that do not compress or repeat, made quickly.
    let mut value = vec![0u8; mib << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for chunk in value.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(input.join("value.bin"), &value)?;
    drop(value);
    let store = format!("sled:{}", dir.path().join("db").display());
    let out = dir.path().join("out");
    let import = measured(&store, &["import", &input.display().to_string()], &out)?;
    let root = std::fs::read_to_string(&out)?.trim().to_owned();
    let get = measured(&store, &["get", &root, "value.bin"], &out)?;
    if std::fs::metadata(&out)?.len() != (mib << 20) as u64 {
        return Err("get printed the wrong number of bytes".into());
    }
    let stat = measured(&store, &["stat", &root], &out)?;
    #[allow(clippy::cast_precision_loss)]
    let size = mib as f64;
    println!("one value of {mib} MiB in a sled store, peak RSS of the `hamt` process:");
    for (what, peak) in [("import", import), ("get", get), ("stat", stat)] {
        println!(
            "  {what:<7} {peak:>8.1} MiB  {:>5.2}× the value (target < 1.5)",
            peak / size
        );
    }
    println!(
        "{}",
        serde_json::json!({"value_mib": mib, "import_mib": import, "get_mib": get, "stat_mib": stat})
    );
    Ok(())
}
