//! Repository checks, run as ordinary tests (in the manner of rust-analyzer's tidy tests):
//! `cargo test -p xtask` fails when the tree holds what it should not.

use std::collections::BTreeSet;
use std::process::Command;

use crate::cmd::root;

/// Every file git tracks, relative to the root.
fn tracked_files() -> Vec<String> {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output()
        .expect("git ls-files runs");
    assert!(out.status.success(), "git ls-files failed");
    String::from_utf8(out.stdout)
        .expect("tracked paths are UTF-8")
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The workspace's member folders, from the root manifest.
fn members() -> BTreeSet<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let start = manifest.find("members = [").expect("a members list");
    let end = start + manifest[start..].find(']').expect("the list ends");
    manifest[start..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// What may stand at the root besides the workspace's members.
const ROOT_ENTRIES: &[&str] = &[
    ".cargo",
    ".ci",
    ".gitignore",
    "ARCHITECTURE.md",
    "Cargo.lock",
    "Cargo.toml",
    "README.md",
    "clippy.toml",
    "fuzz",
    "python",
    "sample-data",
];

#[test]
fn the_root_holds_only_known_entries() {
    let members = members();
    let mut unexpected = BTreeSet::new();
    for path in tracked_files() {
        let top = path.split('/').next().unwrap_or(&path).to_owned();
        if !members.contains(&top) && !ROOT_ENTRIES.contains(&top.as_str()) {
            unexpected.insert(top);
        }
    }
    assert!(
        unexpected.is_empty(),
        "unexpected entries at the repository root: {unexpected:?} (a stray file? if it \
         belongs, add it to ROOT_ENTRIES in xtask/src/tidy.rs)"
    );
}

#[test]
fn no_tracked_path_looks_like_a_shell_accident() {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-/+".contains(c);
    let bad: Vec<String> = tracked_files()
        .into_iter()
        .filter(|p| !p.chars().all(ok) || p.split('/').any(|part| part.starts_with('-')))
        .collect();
    assert!(
        bad.is_empty(),
        "paths with characters a redirect or a pasted command leaves behind: {bad:?}"
    );
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    let command = "cargo xtask test";
    assert!(readme.contains(command), "the README names {command:?}");
    assert!(
        ci.lines().any(|l| l.trim() == command),
        ".ci/run runs {command:?} as a step of its own"
    );
    assert!(
        ci.lines().any(|l| l.trim() == "cargo xtask checks"),
        ".ci/run runs the checks through xtask, where they are listed once"
    );
}
