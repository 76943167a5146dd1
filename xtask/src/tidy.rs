//! Repository checks, run as ordinary tests (in the manner of rust-analyzer's tidy tests):
//! `cargo test -p xtask` fails when the tree holds what it should not.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use crate::cmd::{cargo, root};

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

/// Each package's enabled features as `cargo tree ARGS` resolves them: "name version" to
/// the union of its features over the lines it appears on.
fn resolved_features(args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new(cargo())
        .arg("tree")
        .args(args)
        .args(["--prefix", "none", "--format", "{p} [{f}]"])
        .current_dir(root())
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut packages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `name vX.Y.Z [(path)|(proc-macro)] [f1,f2] [(*)]`
        let Some((package, rest)) = line.split_once(" [") else {
            continue;
        };
        let features = rest.split_once(']').map_or("", |(f, _)| f);
        let name: Vec<&str> = package.split_whitespace().take(2).collect();
        packages.entry(name.join(" ")).or_default().extend(
            features
                .split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_owned),
        );
    }
    packages
}

/// maturin builds `hamt-python` alone, where cargo would give its dependencies fewer features
/// than the workspace's test build does, and compile most of them a second time for the
/// debug wheel; `workspace-test-features` makes up the difference, as long as it is kept whole.
#[test]
fn the_debug_wheel_reuses_the_test_builds_dependencies() {
    let [workspace, all_features] = crate::bench::TESTS_FEATURES;
    let tests = resolved_features(&[workspace, all_features, "--edges", "normal,build,dev"]);
    let wheel = resolved_features(&[
        "--package",
        crate::pyext::CRATE,
        "--features",
        crate::pyext::DEBUG_FEATURES,
        "--edges",
        "normal,build",
    ]);
    assert!(
        wheel.len() > 100,
        "cargo tree listed the wheel's dependencies"
    );
    let differ: Vec<String> = wheel
        .iter()
        .filter_map(|(package, features)| {
            let in_tests = tests.get(package)?;
            (in_tests != features).then(|| {
                format!(
                    "{package}: the tests add {:?}, the wheel adds {:?}",
                    in_tests.difference(features).collect::<Vec<_>>(),
                    features.difference(in_tests).collect::<Vec<_>>()
                )
            })
        })
        .collect();
    assert!(
        differ.is_empty(),
        "the debug wheel would compile these again with other features; make \
         `{}` in python/Cargo.toml turn on what the tests add:\n{}",
        crate::pyext::DEBUG_FEATURES,
        differ.join("\n")
    );
}
