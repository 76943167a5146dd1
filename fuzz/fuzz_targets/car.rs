//! cargo-fuzz target `car`: see [`hamt_fuzz::car`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hamt_fuzz::car::run(data));
