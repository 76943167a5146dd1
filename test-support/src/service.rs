//! The services `cargo xtask test` starts, found through the environment it sets.

/// The value of `var`, which `cargo xtask test` sets for tests that need a server (the IPFS
/// node, the S3 server, the Python venv).
///
/// # Panics
/// When `var` is not set: the test was run without xtask, and fails rather than skips.
pub fn required_env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run these tests with `cargo xtask test`, which starts what they need"
        )
    })
}
