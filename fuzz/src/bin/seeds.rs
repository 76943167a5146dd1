//! Writes the seed corpus: `seeds DIR` fills `DIR/TARGET/` for every fuzz target.
//!
//! `cargo fuzz build` builds this with the targets, coverage instrumentation included, so it
//! links libFuzzer's runtime for the instrumentation's hooks (and the empty target below that
//! the runtime's entry point calls); its own `main` is the one that runs.

extern crate libfuzzer_sys;

libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: seeds DIR");
        return ExitCode::FAILURE;
    };
    match hamt_fuzz::seeds::write_all(&dir) {
        Ok(n) => {
            println!("{n} seed inputs in {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("seeds: cannot write {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
