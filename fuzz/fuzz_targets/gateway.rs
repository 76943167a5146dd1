//! cargo-fuzz target `gateway`: see [`hamt_fuzz::gateway`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hamt_fuzz::gateway::run(data));
