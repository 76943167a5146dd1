//! The `sled:PATH[?OPTIONS]` URL form of a [`SledStoreBuilder`].

use crate::error::Error;
use crate::store::{SCHEME, SledStoreBuilder};

/// Parses `sled:PATH` or `sled://PATH`, optionally followed by `?cache=SIZE`.
///
/// The options start at the first `?`, so a path with a `?` in it can only be opened with
/// the builder.
pub(crate) fn parse(url: &str) -> Result<SledStoreBuilder, Error> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let rest = url
        .strip_prefix(SCHEME)
        .and_then(|r| r.strip_prefix(':'))
        .ok_or_else(|| invalid("expected sled:PATH".into()))?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(invalid("the path is empty".into()));
    }
    let mut builder = SledStoreBuilder::new(path);
    let mut cache = None;
    for option in query.into_iter().flat_map(|q| q.split('&')) {
        let (name, value) = option
            .split_once('=')
            .ok_or_else(|| invalid(format!("option {option:?} is not NAME=VALUE")))?;
        match name {
            "cache" => {
                if cache.is_some() {
                    return Err(invalid("cache is given twice".into()));
                }
                let bytes = parse_size(value).ok_or_else(|| {
                    invalid(format!(
                        "cache={value:?} is not a size such as 65536, 512KiB, 64MiB or 1GiB"
                    ))
                })?;
                cache = Some(bytes);
                builder = builder.cache_bytes(bytes);
            }
            _ => return Err(invalid(format!("unknown option {name:?} (known: cache)"))),
        }
    }
    Ok(builder)
}

/// A byte count: digits, optionally followed by `B`, `KiB`, `MiB` or `GiB` (any case).
fn parse_size(text: &str) -> Option<u64> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return None;
    }
    let number: u64 = number.parse().ok()?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "kib" => 10,
        "mib" => 20,
        "gib" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Some(65536));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("12B"), Some(12));
        assert_eq!(parse_size("512KiB"), Some(512 << 10));
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("64mib"), Some(64 << 20));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        for bad in [
            "",
            "MiB",
            "64MB",
            "64 MiB",
            "-1",
            "1.5GiB",
            "99999999999999999999GiB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(parse_size("17179869184GiB"), None, "overflows u64");
    }
}
