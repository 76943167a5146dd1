//! An IPFS trustless HTTP gateway over any block store (planned).
//!
//! This crate is a placeholder in the workspace so that its folder, name and place in the
//! dependency graph are fixed; its issue builds it. It exports nothing yet.
