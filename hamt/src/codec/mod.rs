//! The two binary codecs this workspace writes by hand, one copy each: [`varint`] (unsigned
//! LEB128, for CAR sections, multiformats and protobuf) and [`cbor`] (item heads, CIDs and a
//! checking reader, for DAG-CBOR blocks of a fixed shape such as HAMT nodes and Zarr shards).
//!
//! Both are small and stable: the HAMT's nodes are written with them, so what they write is
//! part of the on-disk format. Other crates of the workspace use them instead of copies of
//! their own.

pub mod cbor;
pub mod varint;
