//! DAG-CBOR values shown as JSON, in DAG-JSON's conventions for links and bytes.

use base64::Engine as _;
use ipld_core::ipld::Ipld;
use serde_json::{Map, Value, json};

/// `{"/": "bafy…"}` for links, `{"/": {"bytes": "<base64>"}}` for bytes, as DAG-JSON writes
/// them; everything else maps one to one (floats that JSON cannot hold become strings).
pub(crate) fn ipld_to_json(ipld: &Ipld) -> Value {
    match ipld {
        Ipld::Null => Value::Null,
        Ipld::Bool(b) => Value::Bool(*b),
        Ipld::Integer(i) => i64::try_from(*i)
            .map(Value::from)
            .or_else(|_| u64::try_from(*i).map(Value::from))
            .unwrap_or_else(|_| Value::String(i.to_string())),
        Ipld::Float(f) => serde_json::Number::from_f64(*f)
            .map_or_else(|| Value::String(f.to_string()), Value::Number),
        Ipld::String(s) => Value::String(s.clone()),
        Ipld::Bytes(b) => {
            json!({ "/": { "bytes": base64::engine::general_purpose::STANDARD_NO_PAD.encode(b) } })
        }
        Ipld::List(l) => Value::Array(l.iter().map(ipld_to_json).collect()),
        Ipld::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), ipld_to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Ipld::Link(c) => json!({ "/": c.to_string() }),
    }
}
