//! The HAMT node decoder, and decode → encode: a node that decodes re-encodes to canonical
//! DAG-CBOR that decodes to the same slots and re-encodes byte-identical, and a node that was
//! canonical DAG-CBOR to begin with re-encodes to exactly its own bytes. ([`tree`](crate::tree)
//! then uses such nodes as the root of a HAMT.)

use hamt::fuzzing::{FuzzSlot, node_round_trip};
use ipld_core::ipld::Ipld;

/// One input: the bytes of a node block.
pub fn run(data: &[u8]) {
    let Ok((slots, encoded)) = node_round_trip(data) else {
        return;
    };
    check_encoding(data, &slots, &encoded);
}

/// The round-trip properties of a node that decoded to `slots` and encoded to `encoded`.
fn check_encoding(data: &[u8], slots: &[FuzzSlot], encoded: &[u8]) {
    let (again, reencoded) =
        node_round_trip(encoded).expect("a node this crate encoded decodes again");
    assert_eq!(again, slots, "re-encoding changed the slots");
    assert_eq!(
        reencoded, encoded,
        "a re-encoded node re-encodes differently"
    );
    let ipld: Ipld = serde_ipld_dagcbor::from_slice(encoded)
        .expect("an encoded node is DAG-CBOR to serde_ipld_dagcbor");
    let canonical = serde_ipld_dagcbor::to_vec(&ipld).expect("decoded IPLD encodes");
    assert_eq!(
        canonical, encoded,
        "an encoded node is not canonical DAG-CBOR"
    );
    if let Ok(ipld) = serde_ipld_dagcbor::from_slice::<Ipld>(data)
        && serde_ipld_dagcbor::to_vec(&ipld).is_ok_and(|c| c == data)
    {
        assert_eq!(encoded, data, "a canonical node re-encodes differently");
    }
}
