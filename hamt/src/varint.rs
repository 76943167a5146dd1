//! Unsigned LEB128 varints, as CAR sections, multiformats and protobuf use them.

/// Appends `n` as a varint.
pub(crate) fn push(out: &mut Vec<u8>, mut n: u64) {
    loop {
        // The mask keeps seven bits.
        #[allow(clippy::cast_possible_truncation)]
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads a varint from the front of `input`, advancing it.
///
/// # Errors
/// When the input ends first or the varint is longer than ten bytes.
pub(crate) fn take(input: &mut &[u8]) -> Result<u64, &'static str> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&b, rest) = input.split_first().ok_or("truncated varint")?;
        *input = rest;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long")
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        for n in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            super::push(&mut out, n);
            let mut slice = out.as_slice();
            assert_eq!(super::take(&mut slice), Ok(n));
            assert!(slice.is_empty());
        }
        assert!(super::take(&mut &[0x80u8][..]).is_err());
        assert!(super::take(&mut &[0xffu8; 11][..]).is_err());
    }
}
