//! The `hamt` command (being built).

fn main() {}
