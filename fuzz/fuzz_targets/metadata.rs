//! cargo-fuzz target `metadata`: see [`hamt_fuzz::metadata`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hamt_fuzz::metadata::run(data));
