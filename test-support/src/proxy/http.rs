//! HTTP/1.1 framing, as much as the proxy needs to find where each request and response
//! starts and ends and where a body's bytes are: heads are parsed with `httparse`, bodies are
//! cut into [`Piece`]s without being changed.

use bytes::{Bytes, BytesMut};

/// Heads larger than this are not HTTP the proxy understands; it passes them on raw.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
/// A chunk-size line or trailer line longer than this is malformed.
const MAX_LINE: usize = 4096;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the connection closes (responses only).
    UntilClose,
}

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) framing: Framing,
    /// `Expect: 100-continue`: the client waits before sending the body.
    pub(crate) expects_continue: bool,
    /// The connection switches protocols after this request (`Upgrade`).
    pub(crate) upgrade: bool,
    /// The head's bytes, as received.
    pub(crate) raw: Bytes,
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: u16,
    pub(crate) framing: Framing,
    /// The head's bytes, as received.
    pub(crate) raw: Bytes,
}

/// Bytes that are not HTTP/1.1 the proxy can follow.
#[derive(Debug)]
pub(crate) struct NotHttp;

fn header_framing(headers: &[httparse::Header<'_>]) -> Result<Option<Framing>, NotHttp> {
    let mut framing = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let value = std::str::from_utf8(h.value).map_err(|_| NotHttp)?;
            if value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
            {
                return Ok(Some(Framing::Chunked));
            }
            return Err(NotHttp);
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(NotHttp)?;
            framing = Some(Framing::Length(n));
        }
    }
    Ok(framing)
}

fn has_token(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case(name)
            && std::str::from_utf8(h.value)
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Takes a complete request head off the front of `buf`; `Ok(None)` when more bytes are
/// needed.
pub(crate) fn request_head(buf: &mut BytesMut) -> Result<Option<RequestHead>, NotHttp> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        _ => return Err(NotHttp),
    };
    let framing = header_framing(req.headers)?.unwrap_or(Framing::Empty);
    let head = RequestHead {
        method: req.method.ok_or(NotHttp)?.to_owned(),
        path: req.path.ok_or(NotHttp)?.to_owned(),
        framing,
        expects_continue: has_token(req.headers, "expect", "100-continue"),
        upgrade: req
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("upgrade"))
            || req.method == Some("CONNECT"),
        raw: Bytes::new(),
    };
    Ok(Some(RequestHead {
        raw: buf.split_to(len).freeze(),
        ..head
    }))
}

/// Takes a complete response head off the front of `buf`, for a request made with
/// `method`; `Ok(None)` when more bytes are needed.
pub(crate) fn response_head(
    buf: &mut BytesMut,
    method: &str,
) -> Result<Option<ResponseHead>, NotHttp> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        _ => return Err(NotHttp),
    };
    let status = resp.code.ok_or(NotHttp)?;
    let framing = if method == "HEAD" || (100..200).contains(&status) || matches!(status, 204 | 304)
    {
        Framing::Empty
    } else {
        header_framing(resp.headers)?.unwrap_or(Framing::UntilClose)
    };
    Ok(Some(ResponseHead {
        status,
        framing,
        raw: buf.split_to(len).freeze(),
    }))
}

/// `head` (a complete response head) with its `Content-Length` set to `len`.
pub(crate) fn with_content_length(head: &[u8], len: u64) -> Bytes {
    let mut out = Vec::with_capacity(head.len() + 8);
    for line in head.split_inclusive(|&b| b == b'\n') {
        let is_length = line
            .iter()
            .position(|&b| b == b':')
            .is_some_and(|colon| line[..colon].eq_ignore_ascii_case(b"content-length"));
        if is_length {
            out.extend_from_slice(format!("Content-Length: {len}\r\n").as_bytes());
        } else {
            out.extend_from_slice(line);
        }
    }
    out.into()
}

/// One part of a body, in the order it came.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Payload bytes.
    Data(Bytes),
    /// A chunk-size line (`size` 0 is the last chunk).
    ChunkHeader { size: u64, raw: Bytes },
    /// Framing around the payload: the CRLF after a chunk, trailer lines, the final CRLF.
    Framing(Bytes),
    /// The body is complete.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    UntilClose,
    ChunkSize,
    ChunkData(u64),
    ChunkCrlf,
    Trailers,
    Done,
}

/// Cuts a body into [`Piece`]s as its bytes arrive.
#[derive(Debug)]
pub(crate) struct BodyReader {
    state: State,
}

impl BodyReader {
    pub(crate) fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        Self { state }
    }

    /// The next piece from the front of `buf`; `Ok(None)` when more bytes are needed. `eof`
    /// says no more will come.
    pub(crate) fn next(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Option<Piece>, NotHttp> {
        let line = |buf: &mut BytesMut| -> Result<Option<Bytes>, NotHttp> {
            match buf.windows(2).position(|w| w == b"\r\n") {
                Some(i) => Ok(Some(buf.split_to(i + 2).freeze())),
                None if buf.len() > MAX_LINE => Err(NotHttp),
                None => Ok(None),
            }
        };
        let piece = match self.state {
            State::Done => Piece::End,
            State::Length(0) => {
                self.state = State::Done;
                Piece::End
            }
            State::Length(_) | State::ChunkData(_) if buf.is_empty() => {
                return if eof { Err(NotHttp) } else { Ok(None) };
            }
            State::Length(n) => {
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                self.state = State::Length(n - take as u64);
                Piece::Data(buf.split_to(take).freeze())
            }
            State::UntilClose if buf.is_empty() => {
                if !eof {
                    return Ok(None);
                }
                self.state = State::Done;
                Piece::End
            }
            State::UntilClose => Piece::Data(buf.split().freeze()),
            State::ChunkSize => {
                let Some(raw) = line(buf)? else {
                    return if eof { Err(NotHttp) } else { Ok(None) };
                };
                let Ok(httparse::Status::Complete((_, size))) = httparse::parse_chunk_size(&raw)
                else {
                    return Err(NotHttp);
                };
                self.state = if size == 0 {
                    State::Trailers
                } else {
                    State::ChunkData(size)
                };
                Piece::ChunkHeader { size, raw }
            }
            State::ChunkData(n) => {
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                let rest = n - take as u64;
                self.state = if rest == 0 {
                    State::ChunkCrlf
                } else {
                    State::ChunkData(rest)
                };
                Piece::Data(buf.split_to(take).freeze())
            }
            State::ChunkCrlf | State::Trailers => {
                let Some(raw) = line(buf)? else {
                    return if eof { Err(NotHttp) } else { Ok(None) };
                };
                if self.state == State::ChunkCrlf {
                    if &raw[..] != b"\r\n" {
                        return Err(NotHttp);
                    }
                    self.state = State::ChunkSize;
                } else if &raw[..] == b"\r\n" {
                    self.state = State::Done;
                }
                Piece::Framing(raw)
            }
        };
        Ok(Some(piece))
    }
}

/// The bytes of a canned response with `status` and a short body, closing the connection.
pub(crate) fn canned_response(status: u16) -> Bytes {
    let reason = match status {
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        429 => "Too Many Requests",
        _ => "Injected Fault",
    };
    let body = format!("fault injected by the test proxy: HTTP {status}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pieces(framing: Framing, wire: &[u8]) -> Vec<Piece> {
        let mut reader = BodyReader::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // One byte at a time: every state must cope with a split anywhere.
        for &b in wire {
            buf.extend_from_slice(&[b]);
            while let Some(p) = reader.next(&mut buf, false).unwrap() {
                let end = p == Piece::End;
                out.push(p);
                if end {
                    return out;
                }
            }
        }
        while let Some(p) = reader.next(&mut buf, true).unwrap() {
            let end = p == Piece::End;
            out.push(p);
            if end {
                break;
            }
        }
        out
    }

    fn data(pieces: &[Piece]) -> Vec<u8> {
        pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Data(d) => Some(&d[..]),
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    }

    #[test]
    fn chunked_bodies_split_into_payload_and_framing() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
        let got = pieces(Framing::Chunked, wire);
        assert_eq!(data(&got), b"hello world");
        assert_eq!(got.last(), Some(&Piece::End));
        // Every byte is accounted for, in order.
        let rejoined: Vec<u8> = got
            .iter()
            .flat_map(|p| match p {
                Piece::Data(b) | Piece::Framing(b) | Piece::ChunkHeader { raw: b, .. } => {
                    b.to_vec()
                }
                Piece::End => Vec::new(),
            })
            .collect();
        assert_eq!(rejoined, wire);
    }

    #[test]
    fn length_and_until_close_bodies() {
        assert_eq!(data(&pieces(Framing::Length(3), b"abc")), b"abc");
        assert_eq!(data(&pieces(Framing::UntilClose, b"abcdef")), b"abcdef");
        assert_eq!(pieces(Framing::Empty, b""), vec![Piece::End]);
    }

    #[test]
    fn a_body_cut_short_is_not_http() {
        let mut reader = BodyReader::new(Framing::Length(10));
        let mut buf = BytesMut::from(&b"abc"[..]);
        assert!(matches!(
            reader.next(&mut buf, true),
            Ok(Some(Piece::Data(_)))
        ));
        assert!(reader.next(&mut buf, true).is_err());
    }

    #[test]
    fn heads_and_their_framing() {
        let mut buf =
            BytesMut::from(&b"PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody"[..]);
        let head = request_head(&mut buf).unwrap().unwrap();
        assert_eq!(
            (head.method.as_str(), head.path.as_str(), head.framing),
            ("PUT", "/b/k", Framing::Length(4))
        );
        assert_eq!(&buf[..], b"body");
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"[..]);
        let head = response_head(&mut buf, "HEAD").unwrap().unwrap();
        assert_eq!((head.status, head.framing), (200, Framing::Empty));
        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-"[..]);
        assert!(response_head(&mut partial, "GET").unwrap().is_none());
        let rewritten =
            with_content_length(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\nA: b\r\n\r\n", 4);
        assert_eq!(
            &rewritten[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nA: b\r\n\r\n"
        );
    }
}
