//! cargo-fuzz target `node`: see [`hamt_fuzz::node`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hamt_fuzz::node::run(data));
