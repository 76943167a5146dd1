//! An embedded IPFS node as a block store, no daemon (planned).
//!
//! This crate is a placeholder in the workspace so that its folder, name and place in the
//! dependency graph are fixed; its issue builds it. It exports nothing yet.
