//! Unsigned LEB128 varints, as CAR sections, multiformats and protobuf use them: seven bits
//! a byte, least significant first, the high bit set on every byte but the last.
//!
//! [`push`] writes the shortest form. [`take`] reads from a slice and, as protobuf readers
//! do, accepts longer forms of a value; a format that needs the shortest one compares the
//! bytes read with [`len`]. [`Decoder`] reads a byte at a time, for input that comes from a
//! stream. Errors are static reasons for the caller to wrap with what it was reading.

/// The most bytes a varint of a `u64` takes.
pub const MAX_LEN: usize = 10;

/// Appends `n` as a varint, in its shortest form.
#[inline]
pub fn push(out: &mut Vec<u8>, mut n: u64) {
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

/// The number of bytes [`push`] writes for `n`.
#[inline]
pub const fn len(n: u64) -> usize {
    // At most 64 significant bits, so the result is at most 10.
    ((64 - (n | 1).leading_zeros()).div_ceil(7)) as usize
}

/// Reads a varint from the front of `input`, advancing it past the varint.
///
/// # Errors
/// `"truncated varint"` when the input ends first, `"varint too long"` past [`MAX_LEN`]
/// bytes.
#[inline]
pub fn take(input: &mut &[u8]) -> Result<u64, &'static str> {
    let mut decoder = Decoder::new();
    loop {
        let (&b, rest) = input.split_first().ok_or("truncated varint")?;
        *input = rest;
        if let Some(value) = decoder.feed(b)? {
            return Ok(value);
        }
    }
}

/// A varint read a byte at a time, for input that cannot be looked ahead into.
///
/// ```
/// use hamt::codec::varint::Decoder;
///
/// let mut decoder = Decoder::new();
/// assert_eq!(decoder.feed(0xac), Ok(None));
/// assert_eq!(decoder.feed(0x02), Ok(Some(300)));
/// assert_eq!(decoder.bytes(), 2);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Decoder {
    value: u64,
    bytes: u32,
}

impl Decoder {
    /// A decoder that has read nothing.
    pub const fn new() -> Self {
        Self { value: 0, bytes: 0 }
    }

    /// Takes the next byte; returns the value once `byte` was its last.
    ///
    /// # Errors
    /// `"varint too long"` when the [`MAX_LEN`]th byte is not the last; the decoder is then
    /// spent.
    #[inline]
    pub fn feed(&mut self, byte: u8) -> Result<Option<u64>, &'static str> {
        if self.bytes as usize >= MAX_LEN {
            return Err("varint too long");
        }
        // At most 63: the count stays below `MAX_LEN` here. Bits past the 64th of a tenth
        // byte are dropped, as a `u64` cannot hold them.
        self.value |= u64::from(byte & 0x7f) << (7 * self.bytes);
        self.bytes += 1;
        if byte & 0x80 == 0 {
            Ok(Some(self.value))
        } else if self.bytes as usize == MAX_LEN {
            Err("varint too long")
        } else {
            Ok(None)
        }
    }

    /// The number of bytes taken so far.
    pub fn bytes(&self) -> usize {
        self.bytes as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            push(&mut out, n);
            assert_eq!(out.len(), len(n), "{n}");
            let mut slice = out.as_slice();
            assert_eq!(take(&mut slice), Ok(n));
            assert!(slice.is_empty());
            let mut decoder = Decoder::new();
            let (last, init) = out.split_last().unwrap();
            for &b in init {
                assert_eq!(decoder.feed(b), Ok(None));
            }
            assert_eq!(decoder.feed(*last), Ok(Some(n)));
            assert_eq!(decoder.bytes(), out.len());
        }
        assert!(take(&mut &[0x80u8][..]).is_err());
        assert!(take(&mut &[0xffu8; 11][..]).is_err());
    }

    #[test]
    fn longer_forms_read_and_show_in_their_length() {
        // 1 written in two bytes: read as 1, and two bytes are more than `len(1)`.
        let mut input = &[0x81u8, 0x00, 0x05][..];
        assert_eq!(take(&mut input), Ok(1));
        assert_eq!(input, [0x05]);
        let mut decoder = Decoder::new();
        assert_eq!(decoder.feed(0x81), Ok(None));
        assert_eq!(decoder.feed(0x00), Ok(Some(1)));
        assert!(decoder.bytes() > len(1));
        // Ten bytes is the most: a tenth that is not the last is refused, before an eleventh
        // is asked for.
        let mut decoder = Decoder::new();
        for _ in 0..9 {
            assert_eq!(decoder.feed(0xff), Ok(None));
        }
        assert_eq!(decoder.feed(0xff), Err("varint too long"));
        assert_eq!(decoder.feed(0x00), Err("varint too long"));
        assert_eq!(take(&mut &[0xffu8; 10][..]), Err("varint too long"));
        assert_eq!(
            take(&mut &[0xffu8, 0xff, 0xff][..]),
            Err("truncated varint")
        );
    }
}
