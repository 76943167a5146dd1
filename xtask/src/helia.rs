//! helia, the JavaScript IPFS client the gateway's tests read through (npm, pinned by
//! `xtask/helia/package-lock.json`), installed under the target directory.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::Result;
use crate::cmd::{root, run, xtask_dir};

/// Installs helia and the test client script into `target/xtask/helia` (again only when the
/// lockfile changed) and returns that folder, for `HAMT_TEST_HELIA_DIR`.
pub(crate) fn install() -> Result<PathBuf> {
    let dir = xtask_dir().join("helia");
    let source = root().join("xtask/helia");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let lock = fs::read_to_string(source.join("package-lock.json"))
        .map_err(|e| format!("xtask/helia/package-lock.json: {e}"))?;
    // The script is copied every time, so that an edit runs without a reinstall.
    for file in ["package.json", "package-lock.json", "client.mjs"] {
        let to = dir.join(file);
        let _ = fs::remove_file(&to);
        fs::copy(source.join(file), &to).map_err(|e| format!("copy {file}: {e}"))?;
    }
    let stamp = dir.join("node_modules/.installed-lock");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(lock.as_str()) {
        eprintln!("xtask: installing helia from npm (once per lockfile)");
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir))?;
        fs::write(&stamp, &lock).map_err(|e| format!("{}: {e}", stamp.display()))?;
    }
    Ok(dir)
}
