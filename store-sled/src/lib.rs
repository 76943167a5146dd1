//! A persistent block store on sled (being built).
