//! What a request asks for, read from its URL and headers: the content path, the response
//! format (`?format=` or `Accept` with its quality values), the CAR options (`dag-scope`,
//! `entity-bytes`, `car-version`, `car-order`, `car-dups` or their `Accept` parameters), and
//! the conditional headers (`If-None-Match`, `Cache-Control: only-if-cached`).
//!
//! Everything here is parsing: each function takes text from the client and returns what it
//! means or a [`Refusal`] saying why it cannot be served. Nothing reads the store.

use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;

/// The media type of a raw block.
pub(crate) const RAW: &str = "application/vnd.ipld.raw";
/// The media type of a CAR stream.
pub(crate) const CAR: &str = "application/vnd.ipld.car";

/// Longest HAMT key a path may name, in bytes once percent-decoded.
pub(crate) const MAX_KEY_BYTES: usize = 4096;

/// A request that cannot be served, and why, in words for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) reason: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }

    fn bad(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }
}

/// The representations this gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Plain `GET`: a raw block's bytes, a UnixFS file's bytes, a DAG-CBOR block as is.
    Plain,
    /// `application/vnd.ipld.raw`: the block exactly.
    Raw,
    /// `application/vnd.ipld.car`: blocks of the DAG.
    Car,
}

impl Format {
    /// The `?format=` value of this format, for `Content-Location`.
    fn query_value(self) -> Option<&'static str> {
        match self {
            Format::Plain => None,
            Format::Raw => Some("raw"),
            Format::Car => Some("car"),
        }
    }
}

/// `dag-scope`: which blocks below the end of the path a CAR holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The block at the end of the path only.
    Block,
    /// The blocks needed to read the entity there (for non-UnixFS data: its block).
    Entity,
    /// The whole DAG below the end of the path (the default).
    All,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Block => "block",
            Scope::Entity => "entity",
            Scope::All => "all",
        }
    }
}

/// One end of `entity-bytes=from:to`: an offset from the start, or from the end when
/// negative.
pub(crate) type Offset = i64;

/// `entity-bytes=from:to`, inclusive; `to` is `None` for `*` (the end of the entity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntityBytes {
    pub(crate) from: Offset,
    pub(crate) to: Option<Offset>,
}

impl EntityBytes {
    /// The byte range `[start, end)` this selects in an entity of `len` bytes, or `None`
    /// when it selects nothing.
    pub(crate) fn resolve(self, len: u64) -> Option<std::ops::Range<u64>> {
        let at = |offset: Offset| -> u64 {
            if offset < 0 {
                len.saturating_sub(offset.unsigned_abs())
            } else {
                offset.unsigned_abs().min(len)
            }
        };
        let start = at(self.from);
        let end = match self.to {
            None => len,
            // Before the start of the entity: nothing.
            Some(to) if to < 0 => len.checked_sub(to.unsigned_abs()).map_or(0, |i| i + 1),
            Some(to) => to.unsigned_abs().saturating_add(1).min(len),
        };
        (start < end).then_some(start..end)
    }

    /// True when the range lies wholly outside an entity of `len` bytes (past its end, or
    /// ending before its start), as opposed to selecting zero bytes within it.
    pub(crate) fn outside(self, len: u64) -> bool {
        let after = self.from >= 0 && self.from.unsigned_abs() >= len;
        let before = self.to.is_some_and(|to| to < 0 && to.unsigned_abs() > len);
        after || before
    }

    fn tag(self) -> String {
        match self.to {
            Some(to) => format!("{}:{to}", self.from),
            None => format!("{}:*", self.from),
        }
    }
}

/// The query parameters this gateway reads; others are ignored, as the spec asks.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    format: Option<String>,
    #[serde(rename = "dag-scope")]
    dag_scope: Option<String>,
    #[serde(rename = "entity-bytes")]
    entity_bytes: Option<String>,
    #[serde(rename = "car-version")]
    car_version: Option<String>,
    #[serde(rename = "car-order")]
    car_order: Option<String>,
    #[serde(rename = "car-dups")]
    car_dups: Option<String>,
}

/// What a CAR response holds and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CarOptions {
    /// `dups=y`: a block is sent each time the walk meets it; `dups=n`: once.
    pub(crate) dups: bool,
    pub(crate) scope: Scope,
    pub(crate) entity_bytes: Option<EntityBytes>,
}

impl CarOptions {
    /// The `Content-Type` of the stream: blocks always come in depth-first order.
    pub(crate) fn content_type(self) -> &'static str {
        if self.dups {
            "application/vnd.ipld.car; version=1; order=dfs; dups=y"
        } else {
            "application/vnd.ipld.car; version=1; order=dfs; dups=n"
        }
    }

    /// The part of the `ETag` that tells CARs of the same root apart.
    pub(crate) fn etag_suffix(self) -> String {
        let mut s = format!(
            ".car.dfs.{}.{}",
            if self.dups { "y" } else { "n" },
            self.scope.name()
        );
        if let Some(range) = self.entity_bytes {
            s.push('.');
            s.push_str(&range.tag());
        }
        s
    }
}

/// The outcome of content negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub(crate) format: Format,
    /// The CAR options (meaningful for [`Format::Car`] only).
    pub(crate) car: CarOptions,
    /// The query string that names this representation explicitly, for `Content-Location`
    /// when the format or a CAR option came from `Accept` alone; `None` when the URL already
    /// says everything.
    pub(crate) location_query: Option<String>,
}

/// Reads the format and CAR options. `?format=` takes precedence over `Accept`, and
/// `car-*` parameters over `Accept`'s CAR parameters, as the spec says.
pub(crate) fn negotiate(
    params: &Params,
    raw_query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Wanted, Refusal> {
    let accept = Accept::parse(headers);
    let (format, accept_dups) = match params.format.as_deref() {
        Some("raw") => (Format::Raw, None),
        Some("car") => (Format::Car, accept.car_dups()),
        Some(other) => {
            return Err(Refusal::bad(format!(
                "unsupported format {other:?}: this gateway serves raw and car"
            )));
        }
        None => accept.choose()?,
    };
    let car = car_options(params, accept_dups)?;
    // The URL names the representation when `format` is there and no CAR option came from
    // `Accept` alone.
    let from_accept = params.format.is_none()
        || (format == Format::Car && params.car_dups.is_none() && accept_dups.is_some());
    let location_query = match format.query_value() {
        Some(value) if from_accept => {
            let mut query: Vec<String> = raw_query
                .unwrap_or_default()
                .split('&')
                .filter(|p| {
                    let name = p.split('=').next().unwrap_or_default();
                    !p.is_empty() && name != "format" && name != "car-dups"
                })
                .map(str::to_owned)
                .collect();
            query.push(format!("format={value}"));
            if format == Format::Car && params.car_dups.is_none() && accept_dups.is_some() {
                query.push(format!("car-dups={}", if car.dups { "y" } else { "n" }));
            }
            Some(query.join("&"))
        }
        _ => None,
    };
    Ok(Wanted {
        format,
        car,
        location_query,
    })
}

fn car_options(params: &Params, accept_dups: Option<bool>) -> Result<CarOptions, Refusal> {
    if let Some(version) = params.car_version.as_deref()
        && version != "1"
    {
        return Err(Refusal::bad(format!(
            "car-version={version:?} is not served: this gateway writes CAR version 1"
        )));
    }
    if let Some(order) = params.car_order.as_deref()
        && order != "dfs"
        && order != "unk"
    {
        return Err(Refusal::bad(format!(
            "car-order={order:?} is not served: blocks come depth-first (dfs)"
        )));
    }
    let dups = match params.car_dups.as_deref() {
        None => accept_dups.unwrap_or(false),
        Some("y") => true,
        Some("n") => false,
        Some(other) => return Err(Refusal::bad(format!("car-dups={other:?}: expected y or n"))),
    };
    let entity_bytes = params
        .entity_bytes
        .as_deref()
        .map(parse_entity_bytes)
        .transpose()?;
    let scope = match (params.dag_scope.as_deref(), entity_bytes.is_some()) {
        (None | Some("all"), false) => Scope::All,
        (Some("block"), false) => Scope::Block,
        (None | Some("entity"), _) => Scope::Entity,
        (Some(_), true) => {
            return Err(Refusal::bad(
                "entity-bytes implies dag-scope=entity: the two disagree",
            ));
        }
        (Some(other), false) => {
            return Err(Refusal::bad(format!(
                "dag-scope={other:?}: expected block, entity or all"
            )));
        }
    };
    Ok(CarOptions {
        dups,
        scope,
        entity_bytes,
    })
}

/// `from:to` where `from` is an integer and `to` an integer or `*`; negative values count
/// from the end.
fn parse_entity_bytes(text: &str) -> Result<EntityBytes, Refusal> {
    let bad = || {
        Refusal::bad(format!(
            "entity-bytes={text:?}: expected from:to with integers (negative from the end) or * for to"
        ))
    };
    let (from, to) = text.split_once(':').ok_or_else(bad)?;
    let number = |s: &str| -> Result<Offset, Refusal> {
        // Digits only (and a sign): `+1` or ` 1` are not what the spec writes.
        let digits = s.strip_prefix('-').unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let from = number(from)?;
    let to = if to == "*" { None } else { Some(number(to)?) };
    if let Some(to) = to
        && from >= 0
        && to >= 0
        && from > to
    {
        return Err(Refusal::bad(format!(
            "entity-bytes={text:?}: the range ends before it starts"
        )));
    }
    Ok(EntityBytes { from, to })
}

/// One media range of `Accept`.
#[derive(Debug)]
struct MediaRange<'a> {
    media: &'a str,
    params: Vec<(&'a str, &'a str)>,
    /// Thousandths: `q=0.5` is 500.
    q: u16,
}

impl MediaRange<'_> {
    /// How specifically this range names `media`: 3 exactly, 2 as `type/*`, 1 as `*/*`, 0
    /// not at all.
    fn specificity(&self, media: &str) -> u8 {
        if self.media.eq_ignore_ascii_case(media) {
            3
        } else if self.media == "*/*" {
            1
        } else if let Some(kind) = self.media.strip_suffix("/*")
            && media
                .split_once('/')
                .is_some_and(|(k, _)| k.eq_ignore_ascii_case(kind))
        {
            2
        } else {
            0
        }
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// The media types a plain response may carry: whichever the block's codec gives it.
const PLAIN_TYPES: &[&str] = &[
    "application/octet-stream",
    "application/vnd.ipld.dag-cbor",
    "application/vnd.ipld.dag-pb",
    "application/json",
    "application/cbor",
];

/// A parsed `Accept` header (all of them, in order).
#[derive(Debug, Default)]
struct Accept<'a> {
    ranges: Vec<MediaRange<'a>>,
}

impl<'a> Accept<'a> {
    fn parse(headers: &'a HeaderMap) -> Self {
        let mut ranges = Vec::new();
        for value in headers.get_all(header::ACCEPT) {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let mut parts = item.split(';');
                let media = parts.next().unwrap_or_default().trim();
                if media.is_empty() {
                    continue;
                }
                let mut params = Vec::new();
                let mut q = Some(1000);
                for p in parts {
                    let Some((k, v)) = p.split_once('=') else {
                        continue;
                    };
                    let (k, v) = (k.trim(), v.trim().trim_matches('"'));
                    if k.eq_ignore_ascii_case("q") {
                        q = parse_q(v);
                    } else {
                        params.push((k, v));
                    }
                }
                // A malformed quality value makes the range unusable rather than preferred.
                if let Some(q) = q {
                    ranges.push(MediaRange { media, params, q });
                }
            }
        }
        Self { ranges }
    }

    /// Why a CAR range asks for something this gateway does not write, if it does.
    fn car_unsupported(range: &MediaRange<'_>) -> Option<String> {
        if let Some(v) = range.param("version")
            && v != "1"
        {
            return Some(format!("CAR version {v} (this gateway writes version 1)"));
        }
        if let Some(o) = range.param("order")
            && o != "dfs"
            && o != "unk"
        {
            return Some(format!("CAR order {o} (blocks come depth-first, dfs)"));
        }
        if let Some(d) = range.param("dups")
            && d != "y"
            && d != "n"
        {
            return Some(format!("CAR dups={d} (expected y or n)"));
        }
        None
    }

    /// The best range for `media` among those that accept it: (q, specificity, position).
    fn best_for(&self, media: &str, car: bool) -> Option<(u16, u8, usize)> {
        self.ranges
            .iter()
            .enumerate()
            .filter_map(|(pos, r)| {
                let s = r.specificity(media);
                let usable = s > 0 && !(car && s == 3 && Self::car_unsupported(r).is_some());
                usable.then_some((r.q, s, pos))
            })
            // The most specific range decides (RFC 9110 §12.5.1), the earliest among equals.
            .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)))
    }

    /// The `dups` of the most preferred usable CAR range, if it says.
    fn car_dups(&self) -> Option<bool> {
        self.ranges
            .iter()
            .filter(|r| r.q > 0 && r.specificity(CAR) == 3 && Self::car_unsupported(r).is_none())
            .max_by_key(|r| r.q)
            .and_then(|r| r.param("dups"))
            .map(|d| d == "y")
    }

    /// The representation the client prefers: the highest quality value wins, then the more
    /// specific range, then the earlier one; plain when nothing matches, as browsers and
    /// py-hamt expect of a gateway.
    fn choose(&self) -> Result<(Format, Option<bool>), Refusal> {
        let plain = PLAIN_TYPES
            .iter()
            .filter_map(|t| self.best_for(t, false))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)));
        let candidates = [
            (Format::Plain, plain),
            (Format::Raw, self.best_for(RAW, false)),
            (Format::Car, self.best_for(CAR, true)),
        ];
        let best = candidates
            .iter()
            .filter_map(|(f, m)| m.filter(|m| m.0 > 0).map(|m| (*f, m)))
            // Higher q, then more specific, then earlier; `max_by` keeps the last of equals,
            // so iterate so that plain wins a full tie (`*/*`).
            .rev()
            .max_by(|(_, a), (_, b)| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(b.2.cmp(&a.2)));
        match best {
            Some((Format::Car, _)) => Ok((Format::Car, self.car_dups())),
            Some((format, _)) => Ok((format, None)),
            None => {
                // Only CAR ranges this gateway cannot honour: say so rather than send
                // something else.
                let unsupported = self
                    .ranges
                    .iter()
                    .filter(|r| r.q > 0 && r.specificity(CAR) == 3)
                    .find_map(Self::car_unsupported);
                match unsupported {
                    Some(what) => Err(Refusal::new(
                        StatusCode::NOT_ACCEPTABLE,
                        format!("{what} is not served"),
                    )),
                    None => Ok((Format::Plain, None)),
                }
            }
        }
    }
}

/// `q=` of a media range in thousandths, or `None` when malformed (RFC 9110 §12.4.2).
fn parse_q(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// True when `If-None-Match` names `etag`, by the weak comparison RFC 9110 §13.1.2 asks
/// for: `W/"x"` and `"x"` match each other.
pub(crate) fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let ours = opaque(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| entity_tags(v).any(|t| t != "*" && opaque(t) == ours))
}

/// True for `If-None-Match: *`, which matches whenever the resource exists.
pub(crate) fn if_none_match_any(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| entity_tags(v).any(|t| t == "*"))
}

/// The opaque part of an entity tag: `"x"` of `W/"x"`.
fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// The entity tags of an `If-None-Match` value (`*`, or a list of possibly weak quoted
/// tags, which may themselves contain commas).
fn entity_tags(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = value;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return None;
        }
        if let Some(after) = rest.strip_prefix('*') {
            rest = after;
            return Some("*");
        }
        let start = rest;
        let body = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(inner) = body.strip_prefix('"') else {
            // Not a tag: skip to the next comma.
            rest = rest.split_once(',').map_or("", |(_, r)| r);
            return Some("");
        };
        let end = inner.find('"').map_or(inner.len(), |i| i + 1);
        let taken = start.len() - inner.len() + end;
        let tag = &start[..taken.min(start.len())];
        rest = &start[taken.min(start.len())..];
        Some(tag)
    })
}

/// True when `Cache-Control` carries `only-if-cached`.
pub(crate) fn only_if_cached(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("only-if-cached"))
}

/// True for `Service-Worker: script`, a browser registering a worker (path-gateway spec:
/// refused with 400).
pub(crate) fn service_worker(headers: &HeaderMap) -> bool {
    headers
        .get("service-worker")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("script"))
}

/// `/ipfs/{cid}[/{key…}]`: the CID text and the HAMT key the rest of the path names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ContentPath<'a> {
    pub(crate) cid: &'a str,
    /// `None` for the root itself (`/ipfs/{cid}` or `/ipfs/{cid}/`).
    pub(crate) key: Option<String>,
}

/// Splits the path of `/ipfs/…` (as sent, still percent-encoded) into the CID and the key.
/// Each segment of the key is percent-decoded; an encoded `/` (`%2F`), `.` and `..`
/// segments, empty segments and keys over [`MAX_KEY_BYTES`] are refused rather than
/// guessed at.
pub(crate) fn content_path(path: &str) -> Result<ContentPath<'_>, Refusal> {
    let rest = path.strip_prefix("/ipfs/").unwrap_or(path);
    let (cid, rest) = rest.split_once('/').unwrap_or((rest, ""));
    if rest.is_empty() {
        return Ok(ContentPath { cid, key: None });
    }
    // Each byte decodes to at most one: a longer raw path cannot fit.
    if rest.len() > 3 * MAX_KEY_BYTES {
        return Err(too_long());
    }
    let mut key = Vec::with_capacity(rest.len());
    for (i, segment) in rest.split('/').enumerate() {
        if segment.is_empty() {
            return Err(Refusal::bad(
                "empty path segment: a key has no empty parts (a doubled or trailing /)",
            ));
        }
        if i > 0 {
            key.push(b'/');
        }
        let decoded = percent_decode(segment)?;
        if decoded == b"." || decoded == b".." {
            return Err(Refusal::bad(
                "path segments . and .. are refused: a key is named exactly",
            ));
        }
        if decoded.contains(&b'/') {
            return Err(Refusal::bad(
                "an encoded / (%2F) in a path segment is refused: write / to separate key parts",
            ));
        }
        key.extend_from_slice(&decoded);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(too_long());
    }
    let key = String::from_utf8(key)
        .map_err(|_| Refusal::bad("the path is not UTF-8 once percent-decoded"))?;
    Ok(ContentPath {
        cid,
        key: Some(key),
    })
}

fn too_long() -> Refusal {
    Refusal::new(
        StatusCode::URI_TOO_LONG,
        format!("the path names a key longer than {MAX_KEY_BYTES} bytes"),
    )
}

fn percent_decode(segment: &str) -> Result<Vec<u8>, Refusal> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(Refusal::bad(
                    "malformed percent-encoding in the path (% must be followed by two hex digits)",
                ));
            };
            // Two hex digits fit in a byte.
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn accept(value: &str) -> Result<Format, Refusal> {
        let h = headers(&[("accept", value)]);
        negotiate(&Params::default(), None, &h).map(|w| w.format)
    }

    #[test]
    fn quality_values_decide() {
        assert_eq!(accept(&format!("{CAR};q=0.5, {RAW}")), Ok(Format::Raw));
        assert_eq!(accept(&format!("{RAW};q=0.5, {CAR}")), Ok(Format::Car));
        assert_eq!(accept(&format!("{RAW}, {CAR}")), Ok(Format::Raw));
        assert_eq!(accept(&format!("text/html, {RAW};q=0.9")), Ok(Format::Raw));
        assert_eq!(accept(&format!("*/*, {RAW};q=0.9")), Ok(Format::Plain));
        assert_eq!(accept("*/*"), Ok(Format::Plain));
        assert_eq!(accept("application/*"), Ok(Format::Plain));
        assert_eq!(accept("text/html"), Ok(Format::Plain));
        assert_eq!(accept(&format!("{RAW};q=0")), Ok(Format::Plain));
        // The most specific range decides: raw is refused even though */* is welcome.
        assert_eq!(
            accept(&format!("{RAW};q=0, {CAR};q=0.1, */*;q=0.2")),
            Ok(Format::Plain)
        );
        assert_eq!(accept(&format!("{RAW};q=0.3, */*;q=0.2")), Ok(Format::Raw));
        // A malformed q makes the range unusable.
        assert_eq!(accept(&format!("{RAW};q=2")), Ok(Format::Plain));
        assert_eq!(accept(&format!("{RAW};q=0.1234")), Ok(Format::Plain));
    }

    #[test]
    fn car_parameters_in_accept() {
        let h = headers(&[("accept", &format!("{CAR}; version=1; order=dfs; dups=y"))]);
        let w = negotiate(&Params::default(), None, &h).unwrap();
        assert_eq!(w.format, Format::Car);
        assert!(w.car.dups);
        assert_eq!(w.location_query.as_deref(), Some("format=car&car-dups=y"));
        // A CAR version this gateway does not write is not acceptable.
        assert_eq!(
            accept(&format!("{CAR}; version=2")).unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
        // ... unless something else is.
        assert_eq!(
            accept(&format!("{CAR}; version=2, {RAW};q=0.1")),
            Ok(Format::Raw)
        );
        assert_eq!(
            accept(&format!("{CAR};order=foo, {CAR};order=dfs;dups=y;q=0.5")),
            Ok(Format::Car)
        );
    }

    #[test]
    fn query_parameters_win() {
        let params = Params {
            format: Some("car".into()),
            car_dups: Some("n".into()),
            ..Params::default()
        };
        let h = headers(&[("accept", &format!("{CAR}; dups=y"))]);
        let w = negotiate(&params, Some("format=car&car-dups=n"), &h).unwrap();
        assert!(!w.car.dups);
        assert_eq!(w.location_query, None);
        let params = Params {
            format: Some("raw".into()),
            ..Params::default()
        };
        let w = negotiate(&params, Some("format=raw"), &h).unwrap();
        assert_eq!(w.format, Format::Raw);
        assert_eq!(w.location_query, None);
    }

    #[test]
    fn scopes_and_ranges() {
        let opts = |scope: Option<&str>, bytes: Option<&str>| {
            car_options(
                &Params {
                    dag_scope: scope.map(Into::into),
                    entity_bytes: bytes.map(Into::into),
                    ..Params::default()
                },
                None,
            )
        };
        assert_eq!(opts(None, None).unwrap().scope, Scope::All);
        assert_eq!(opts(Some("block"), None).unwrap().scope, Scope::Block);
        assert_eq!(opts(Some("entity"), None).unwrap().scope, Scope::Entity);
        let r = opts(None, Some("0:*")).unwrap();
        assert_eq!(r.scope, Scope::Entity);
        assert_eq!(r.entity_bytes, Some(EntityBytes { from: 0, to: None }));
        assert_eq!(r.etag_suffix(), ".car.dfs.n.entity.0:*");
        assert!(opts(Some("all"), Some("0:10")).is_err());
        assert!(opts(Some("deep"), None).is_err());
        for bad in ["", "1", "a:b", "1:", ":1", "+1:2", "5:2", "1:2:3"] {
            assert!(opts(None, Some(bad)).is_err(), "{bad}");
        }
        let eb = |from, to| EntityBytes { from, to };
        assert_eq!(eb(0, None).resolve(10), Some(0..10));
        assert_eq!(eb(2, Some(4)).resolve(10), Some(2..5));
        assert_eq!(eb(-3, None).resolve(10), Some(7..10));
        assert_eq!(eb(499, Some(-1000)).resolve(2000), Some(499..1001));
        assert_eq!(eb(5, Some(100)).resolve(10), Some(5..10));
        assert_eq!(eb(10, None).resolve(10), None);
        assert_eq!(eb(-100, Some(-50)).resolve(10), None);
    }

    #[test]
    fn weak_comparison_of_entity_tags() {
        let m = |v: &str| if_none_match(&headers(&[("if-none-match", v)]), "\"bafy.raw\"");
        assert!(m("\"bafy.raw\""));
        assert!(m("W/\"bafy.raw\""));
        assert!(m("\"other\", W/\"bafy.raw\""));
        assert!(m("\"a,b\", \"bafy.raw\""));
        assert!(!m("*"));
        assert!(if_none_match_any(&headers(&[("if-none-match", "*")])));
        assert!(!if_none_match_any(&headers(&[("if-none-match", "\"*\"")])));
        assert!(!m("\"bafy\""));
        assert!(!m("\"bafy.raw"));
        assert!(!m("bafy.raw"));
        assert!(!m(""));
    }

    #[test]
    fn paths_are_keys() {
        let key = |p: &str| content_path(p).map(|c| c.key);
        assert_eq!(content_path("/ipfs/bafy").unwrap().cid, "bafy");
        assert_eq!(key("/ipfs/bafy"), Ok(None));
        assert_eq!(key("/ipfs/bafy/"), Ok(None));
        assert_eq!(
            key("/ipfs/bafy/t2m/zarr.json"),
            Ok(Some("t2m/zarr.json".into()))
        );
        assert_eq!(key("/ipfs/bafy/a%20b/c"), Ok(Some("a b/c".into())));
        assert_eq!(key("/ipfs/bafy/%C3%A9"), Ok(Some("é".into())));
        for bad in [
            "/ipfs/bafy/a/../b",
            "/ipfs/bafy/..",
            "/ipfs/bafy/./a",
            "/ipfs/bafy/%2e%2E",
            "/ipfs/bafy/a%2Fb",
            "/ipfs/bafy/a%2fb",
            "/ipfs/bafy/a//b",
            "/ipfs/bafy/a/",
            "/ipfs/bafy/%zz",
            "/ipfs/bafy/%4",
            "/ipfs/bafy/%FF",
        ] {
            assert_eq!(
                key(bad).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
        let long = format!("/ipfs/bafy/{}", "k".repeat(MAX_KEY_BYTES + 1));
        assert_eq!(key(&long).unwrap_err().status, StatusCode::URI_TOO_LONG);
        let fits = format!("/ipfs/bafy/{}", "k".repeat(MAX_KEY_BYTES));
        assert!(key(&fits).is_ok());
    }
}
