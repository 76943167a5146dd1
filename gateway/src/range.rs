//! Single byte ranges of the `Range` header (RFC 9110 §14).

use std::ops::Range;

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// No range, or one this server ignores (several ranges, other units): the whole body.
    Whole,
    /// One satisfiable range.
    Part(Range<u64>),
    /// A range that starts past the end: 416.
    Unsatisfiable,
}

/// Interprets `header` for a body of `len` bytes. A malformed header is ignored, as RFC 9110
/// allows, and the whole body is served.
pub(crate) fn parse(header: Option<&str>, len: u64) -> Wanted {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match last.parse::<u64>() {
            Ok(0) => Wanted::Unsatisfiable,
            Ok(_) if len == 0 => Wanted::Unsatisfiable,
            Ok(n) => Wanted::Part(len.saturating_sub(n)..len),
            Err(_) => Wanted::Whole,
        },
        // bytes=A-: from A to the end.
        (false, true) => match first.parse::<u64>() {
            Ok(a) if a < len => Wanted::Part(a..len),
            Ok(_) => Wanted::Unsatisfiable,
            Err(_) => Wanted::Whole,
        },
        // bytes=A-B, inclusive.
        (false, false) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(a), Ok(b)) if a > b => Wanted::Whole,
            (Ok(a), Ok(_)) if a >= len => Wanted::Unsatisfiable,
            (Ok(a), Ok(b)) => Wanted::Part(a..(b.saturating_add(1)).min(len)),
            _ => Wanted::Whole,
        },
        (true, true) => Wanted::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse(None, 10), Wanted::Whole);
        assert_eq!(parse(Some("bytes=2-4"), 10), Wanted::Part(2..5));
        assert_eq!(parse(Some("bytes=2-40"), 10), Wanted::Part(2..10));
        assert_eq!(parse(Some("bytes=7-"), 10), Wanted::Part(7..10));
        assert_eq!(parse(Some("bytes=-3"), 10), Wanted::Part(7..10));
        assert_eq!(parse(Some("bytes=-30"), 10), Wanted::Part(0..10));
        assert_eq!(parse(Some("bytes=10-"), 10), Wanted::Unsatisfiable);
        assert_eq!(parse(Some("bytes=10-12"), 10), Wanted::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), Wanted::Unsatisfiable);
        assert_eq!(parse(Some("bytes=5-2"), 10), Wanted::Whole);
        assert_eq!(parse(Some("bytes=0-1,4-5"), 10), Wanted::Whole);
        assert_eq!(parse(Some("items=0-1"), 10), Wanted::Whole);
        assert_eq!(parse(Some("bytes=x-y"), 10), Wanted::Whole);
        assert_eq!(
            parse(Some("bytes=99999999999999999999-"), 10),
            Wanted::Whole
        );
    }
}
