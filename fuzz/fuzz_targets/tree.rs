//! cargo-fuzz target `tree`: see [`hamt_fuzz::tree`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hamt_fuzz::tree::run(data));
