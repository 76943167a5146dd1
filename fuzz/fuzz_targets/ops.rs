//! cargo-fuzz target `ops`: see [`hamt_fuzz::ops`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hamt_fuzz::ops::run(data));
