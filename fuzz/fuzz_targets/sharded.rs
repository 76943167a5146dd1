//! cargo-fuzz target `sharded`: see [`hamt_fuzz::sharded`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hamt_fuzz::sharded::run(data));
