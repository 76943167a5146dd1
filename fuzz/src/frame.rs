//! Several inputs in one byte string: each part is a LEB128 length and then that many bytes.
//! A length past the end takes what is left, so every byte string splits somehow.

use hamt::codec::varint;

/// The parts of `data`, at most `max` of them (bytes after those are ignored).
pub fn split(data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && parts.len() < max {
        let (len, head) = read_len(rest);
        rest = &rest[head..];
        let n = usize::try_from(len).unwrap_or(usize::MAX).min(rest.len());
        let (part, tail) = rest.split_at(n);
        parts.push(part);
        rest = tail;
    }
    parts
}

/// A LEB128 length at the front of `data` and its length in bytes; a truncated or overlong
/// varint reads as "everything".
fn read_len(data: &[u8]) -> (u64, usize) {
    let mut d = varint::Decoder::new();
    for (i, &b) in data.iter().enumerate().take(10) {
        match d.feed(b) {
            Ok(Some(v)) => return (v, i + 1),
            Ok(None) => {}
            Err(_) => return (u64::MAX, i + 1),
        }
    }
    (u64::MAX, data.len().min(10))
}

/// Joins `parts` so that [`split`] gives them back.
pub fn join<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        varint::push(&mut out, p.len() as u64);
        out.extend_from_slice(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_then_split_gives_the_parts_back() {
        let parts: [&[u8]; 4] = [b"", b"abc", &[7; 300], b"z"];
        assert_eq!(split(&join(parts), 10), parts);
        assert_eq!(split(&join(parts), 2), [&b""[..], &b"abc"[..]]);
        // A length past the end takes the rest.
        assert_eq!(split(&[0x7f, 1, 2], 5), [&[1u8, 2][..]]);
    }
}
