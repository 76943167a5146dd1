//! The Python venvs the interop tests and benchmarks use: py-hamt, zarr 3.0.9, xarray and
//! moto from PyPI, pinned in `xtask/requirements.txt`; and a second one with the newest
//! zarr-python 3 (and icechunk and zarrs-python, which need it), pinned in
//! `xtask/requirements-newest.txt`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;
use crate::cmd::{root, run, xtask_dir};

/// The interpreter of a venv holding the pinned Python peers, created on first use.
pub(crate) fn python_env() -> Result<PathBuf> {
    venv("venv", "xtask/requirements.txt")
}

/// The interpreter of the venv with the newest zarr-python, created on first use.
pub(crate) fn newest_env() -> Result<PathBuf> {
    venv("venv-newest", "xtask/requirements-newest.txt")
}

/// The interpreter of venv `name` under the xtask directory, holding `requirements`.
fn venv(name: &str, requirements: &str) -> Result<PathBuf> {
    let dir = xtask_dir().join(name);
    let python = dir.join("bin/python");
    let requirements = root().join(requirements);
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
