//! Every seed runs through its target's harness without a failed check: the harnesses'
//! properties hold for the project's own data, so a crash in a fuzz run is about a mutated
//! input.

use std::fs;

/// A fuzz target's harness.
type Harness = fn(&[u8]);

#[test]
fn every_seed_passes_its_target() {
    let dir = std::env::temp_dir().join(format!("hamt-fuzz-seeds-{}", std::process::id()));
    let written = hamt_fuzz::seeds::write_all(&dir).expect("seeds write");
    let targets: [(&str, Harness); 7] = [
        ("node", hamt_fuzz::node::run),
        ("tree", hamt_fuzz::tree::run),
        ("car", hamt_fuzz::car::run),
        ("sharded", hamt_fuzz::sharded::run),
        ("metadata", hamt_fuzz::metadata::run),
        ("gateway", hamt_fuzz::gateway::run),
        ("ops", hamt_fuzz::ops::run),
    ];
    let mut ran = 0;
    for (target, run) in targets {
        let entries = fs::read_dir(dir.join(target)).expect("a seed directory per target");
        let mut here = 0;
        for entry in entries {
            run(&fs::read(entry.expect("a seed").path()).expect("a seed reads"));
            here += 1;
        }
        assert!(here > 0, "no seeds for {target}");
        ran += here;
    }
    assert_eq!(ran, written);
    fs::remove_dir_all(&dir).expect("cleanup");
}
