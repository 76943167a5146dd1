//! Zarr metadata documents: which keys hold them, and reading one (telling an encrypted
//! document from a broken one).

use serde_json::{Map, Value};

use crate::crypto::OVERHEAD;
use crate::error::{Error, Result};

/// The key suffixes of metadata documents, Zarr v3 and v2 (py-hamt's `ZARR_METADATA_SUFFIXES`).
pub(crate) const SUFFIXES: [&str; 4] = ["zarr.json", ".zarray", ".zattrs", ".zgroup"];

/// The suffix of Zarr v3 metadata documents.
pub(crate) const V3_DOCUMENT: &str = "zarr.json";

/// Zarr v2's consolidated metadata, a JSON document too (not in [`SUFFIXES`], as in py-hamt).
pub(crate) const CONSOLIDATED: &str = ".zmetadata";

/// True for a key whose value is a metadata document (`temp/zarr.json`, `.zattrs`).
pub(crate) fn is_metadata_key(key: &str) -> bool {
    SUFFIXES.iter().any(|s| key.ends_with(s))
}

/// True for a key whose value is JSON: a metadata document or consolidated metadata.
pub(crate) fn is_json_key(key: &str) -> bool {
    is_metadata_key(key) || key.ends_with(CONSOLIDATED)
}

/// True for the key of a Zarr v3 document: `zarr.json` or `…/zarr.json`.
pub(crate) fn is_v3_document(key: &str) -> bool {
    key == V3_DOCUMENT || key.ends_with("/zarr.json")
}

/// `raw` as a JSON object, if it is one.
pub(crate) fn json_object(raw: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(raw) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// True when `raw`, read as a JSON document, has the shape of a value sealed by
/// [`Encryption`](crate::Encryption) instead: not JSON, at least a nonce and a tag long, and
/// either not UTF-8 or not starting like a JSON object. A truncated or broken document is text
/// that starts with `{`, so it is not "encrypted"; ciphertext is random bytes, which start with
/// `{` one time in 256 but are valid UTF-8 about once in 10⁷ at 28 bytes (an empty plaintext)
/// and under once in 10¹⁴ for any real document.
pub(crate) fn looks_encrypted(raw: &[u8]) -> bool {
    if raw.len() < OVERHEAD || serde_json::from_slice::<Value>(raw).is_ok() {
        return false;
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return true;
    };
    !text.trim_start().starts_with('{')
}

/// Fails with [`Error::Encrypted`] when the document at `key` looks encrypted.
///
/// # Errors
/// [`Error::Encrypted`].
pub(crate) fn refuse_encrypted(key: &str, raw: &[u8]) -> Result<()> {
    if looks_encrypted(raw) {
        return Err(Error::Encrypted { key: key.into() });
    }
    Ok(())
}

/// The JSON document at `key`.
///
/// # Errors
/// [`Error::Encrypted`] for a value shaped like ciphertext; [`Error::Metadata`] for anything
/// else that is not JSON.
pub(crate) fn parse(key: &str, raw: &[u8]) -> Result<Value> {
    refuse_encrypted(key, raw)?;
    serde_json::from_slice(raw).map_err(|e| Error::Metadata {
        key: key.into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Encryption, EncryptionKey};

    #[test]
    fn metadata_keys_by_suffix() {
        for key in [
            "zarr.json",
            "g/t/zarr.json",
            ".zarray",
            "t/.zattrs",
            "g/.zgroup",
        ] {
            assert!(is_metadata_key(key) && is_json_key(key), "{key}");
        }
        // A bare suffix match, as py-hamt's `str.endswith`.
        assert!(is_metadata_key("notzarr.json"));
        for key in ["t/c/0", "zarr.json/c/0", "t/0.0", ""] {
            assert!(!is_metadata_key(key), "{key}");
        }
        assert!(!is_metadata_key(".zmetadata") && is_json_key(".zmetadata"));
        assert!(is_v3_document("zarr.json") && is_v3_document("a/zarr.json"));
        assert!(!is_v3_document("azarr.json") && !is_v3_document("a/.zarray"));
    }

    #[test]
    fn ciphertext_is_told_from_broken_json() {
        let enc = Encryption::new(EncryptionKey::from_slice(&[3; 32]).unwrap(), &b""[..]);
        let doc = br#"{"zarr_format":3,"node_type":"group"}"#;
        let sealed = enc.encrypt(doc).to_vec();
        // The nonce is random, so the first byte can be anything, `{` and whitespace included.
        for first in 0..=u8::MAX {
            let mut sealed = sealed.clone();
            sealed[0] = first;
            assert!(looks_encrypted(&sealed), "{first}");
            assert!(
                matches!(parse("zarr.json", &sealed), Err(Error::Encrypted { .. })),
                "{first}"
            );
        }
        assert!(!looks_encrypted(doc));
        assert!(parse("zarr.json", doc).is_ok());
        // Truncated JSON, short garbage, nothing: broken metadata, not a missing key.
        let truncated = &br#"{"zarr_format":3,"node_type":"group","attributes":{"#[..];
        assert!(truncated.len() >= OVERHEAD);
        let spaced = &b"  \n{\"zarr_format\": 3, \"node_type\": \"group\", \"attr"[..];
        assert!(spaced.len() >= OVERHEAD);
        for broken in [truncated, spaced, &b"\xff\xfe"[..], &b""[..]] {
            assert!(!looks_encrypted(broken));
            assert!(matches!(
                parse("zarr.json", broken),
                Err(Error::Metadata { .. })
            ));
        }
    }
}
