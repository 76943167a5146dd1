//! Encryption compatible with py-hamt's `SimpleEncryptedZarrHAMTStore`.
//!
//! Each encrypted value is `nonce (24 bytes) ‖ tag (16 bytes) ‖ ciphertext`, sealed with
//! XChaCha20-Poly1305 under a 32-byte key, with the store's *header* as associated data and a
//! fresh random nonce per value. py-hamt encrypts every key of the store, metadata included;
//! [`Encryption::keep_clear`] leaves chosen prefixes readable by plain Zarr tools, so a dataset
//! can carry public and private variables side by side (each side then opens in py-hamt with
//! `ZarrHAMTStore` or `SimpleEncryptedZarrHAMTStore` respectively).

use std::fmt;

use bytes::Bytes;
use chacha20poly1305::aead::{AeadCore, AeadInPlace, KeyInit, OsRng};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Bytes of the nonce at the start of an encrypted value.
pub const NONCE_LEN: usize = 24;
/// Bytes of the authentication tag after the nonce.
pub const TAG_LEN: usize = 16;
/// Bytes an encrypted value adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// A 32-byte XChaCha20-Poly1305 key. It is wiped from memory on drop and never printed.
#[derive(Clone)]
pub struct EncryptionKey(Zeroizing<[u8; 32]>);

impl EncryptionKey {
    /// A key from exactly 32 bytes.
    ///
    /// # Errors
    /// [`Error::InvalidEncryptionKey`] for any other length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::InvalidEncryptionKey { len: bytes.len() })?;
        Ok(Self(Zeroizing::new(key)))
    }

    /// A new random key from the operating system's generator.
    pub fn generate() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        Self(Zeroizing::new(key.into()))
    }

    /// The key bytes, for saving it somewhere safe.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

/// Which values of a store are encrypted, and how.
#[derive(Clone)]
pub struct Encryption {
    cipher: XChaCha20Poly1305,
    key: EncryptionKey,
    header: Bytes,
    clear: Vec<String>,
}

impl Encryption {
    /// Encrypts every value of the store, as py-hamt's `SimpleEncryptedZarrHAMTStore` does;
    /// `header` is the associated data (py-hamt's `header` argument).
    pub fn new(key: EncryptionKey, header: impl Into<Bytes>) -> Self {
        let cipher = XChaCha20Poly1305::new(key.as_bytes().into());
        Self {
            cipher,
            key,
            header: header.into(),
            clear: Vec::new(),
        }
    }

    /// Leaves keys starting with `prefix` (a group or array path such as `"public/"`, or an
    /// exact key such as `"zarr.json"`) unencrypted.
    #[must_use]
    pub fn keep_clear(mut self, prefix: impl Into<String>) -> Self {
        self.clear.push(prefix.into());
        self
    }

    /// The key.
    pub fn key(&self) -> &EncryptionKey {
        &self.key
    }

    /// The associated data every value is sealed with.
    pub fn header(&self) -> &Bytes {
        &self.header
    }

    /// True when the value of `key` is stored encrypted.
    pub fn applies_to(&self, key: &str) -> bool {
        !self.clear.iter().any(|p| key.starts_with(p.as_str()))
    }

    /// Seals `plain` under a fresh random nonce: `nonce ‖ tag ‖ ciphertext`.
    pub fn encrypt(&self, plain: &[u8]) -> Bytes {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = Vec::with_capacity(OVERHEAD + plain.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&[0; TAG_LEN]);
        out.extend_from_slice(plain);
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce, &self.header, &mut out[OVERHEAD..])
            // Only fails for messages longer than 2^38 bytes, which a `Vec` cannot hold here.
            .expect("XChaCha20-Poly1305 encrypts any in-memory value");
        out[NONCE_LEN..OVERHEAD].copy_from_slice(&tag);
        Bytes::from(out)
    }

    /// Opens a value sealed by [`encrypt`](Self::encrypt) (or by py-hamt).
    ///
    /// # Errors
    /// [`Error::Decryption`] when the value is too short or does not authenticate.
    pub fn decrypt(&self, key: &str, sealed: &[u8]) -> Result<Bytes> {
        let fail = || Error::Decryption { key: key.into() };
        if sealed.len() < OVERHEAD {
            return Err(fail());
        }
        let nonce = XNonce::from_slice(&sealed[..NONCE_LEN]);
        let tag = Tag::from_slice(&sealed[NONCE_LEN..OVERHEAD]);
        let mut plain = sealed[OVERHEAD..].to_vec();
        self.cipher
            .decrypt_in_place_detached(nonce, &self.header, &mut plain, tag)
            .map_err(|_| fail())?;
        Ok(Bytes::from(plain))
    }
}

impl fmt::Debug for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryption")
            .field("key", &self.key)
            .field("header_len", &self.header.len())
            .field("keep_clear", &self.clear)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_layout_and_failures() {
        let enc = Encryption::new(EncryptionKey::generate(), &b"hdr"[..]);
        let sealed = enc.encrypt(b"hello");
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        assert_eq!(enc.decrypt("k", &sealed).unwrap(), &b"hello"[..]);
        // Nonces are random: the same plaintext seals differently.
        assert_ne!(enc.encrypt(b"hello"), sealed);

        let other = Encryption::new(EncryptionKey::generate(), &b"hdr"[..]);
        assert!(matches!(
            other.decrypt("k", &sealed),
            Err(Error::Decryption { .. })
        ));
        let wrong_header = Encryption::new(enc.key().clone(), &b"other"[..]);
        assert!(wrong_header.decrypt("k", &sealed).is_err());
        let mut flipped = sealed.to_vec();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(enc.decrypt("k", &flipped).is_err());
        assert!(enc.decrypt("k", &sealed[..OVERHEAD - 1]).is_err());
    }

    #[test]
    fn keys_never_print() {
        let key = EncryptionKey::from_slice(&[7; 32]).unwrap();
        let enc = Encryption::new(key.clone(), &b""[..]).keep_clear("public/");
        let shown = format!("{key:?} {enc:?}");
        assert!(!shown.contains("7, 7"), "{shown}");
        assert!(shown.contains("redacted"));
        assert!(enc.applies_to("private/c/0") && !enc.applies_to("public/zarr.json"));
        assert!(matches!(
            EncryptionKey::from_slice(&[0; 31]),
            Err(Error::InvalidEncryptionKey { len: 31 })
        ));
    }
}
