//! One connection through the proxy: the client's bytes to the service and the service's
//! back, each read by a pump that follows the protocol and decides what to pass on (and
//! which fault to apply), and written by [`write_out`] with the direction's shaping.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::http::{self, BodyReader, Framing, NotHttp, Piece};
use super::queue::{self, Sender};
use super::shape::{Ending, Out, write_out};
use super::{Direction, Fault, Protocol, Shared};

/// Longest wait for the service to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection with nothing to read for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_mins(2);
const READ_SIZE: usize = 64 * 1024;

/// Accepts clients until dropped; dropping it drops (and so closes) every connection.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    shared.connection_accepted();
                    connections.spawn(connection(client, shared.clone()));
                }
                // Out of file descriptors, say: wait a little rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// What the service's side tells the writer towards the client: one entry per request.
#[derive(Debug)]
enum Exchange {
    /// The request went to the service; its response gets this fault.
    Forwarded {
        method: String,
        fault: Option<Fault>,
    },
    /// The request was not forwarded: answer with this status and close.
    Canned(u16),
    /// The client's bytes are not HTTP the proxy follows: pass everything on raw.
    Raw,
}

async fn connection(mut client: TcpStream, shared: Arc<Shared>) {
    let Ok(Ok(mut service)) =
        tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(shared.upstream())).await
    else {
        // The client sees its connection closed, as if the service refused it.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = service.set_nodelay(true);
    let ending = {
        let (client_read, mut client_write) = client.split();
        let (service_read, mut service_write) = service.split();
        let (to_service, to_service_queue) = queue::channel(shared.clone(), Direction::ToService);
        let (to_client, to_client_queue) = queue::channel(shared.clone(), Direction::ToClient);
        let shared = &*shared;
        let others = async {
            let result = match shared.protocol() {
                Protocol::Http => {
                    let (exchanges, exchange_queue) = mpsc::unbounded_channel();
                    tokio::try_join!(
                        http_requests(client_read, to_service, exchanges, shared),
                        write_out(
                            &mut service_write,
                            to_service_queue,
                            shared,
                            Direction::ToService
                        ),
                        http_responses(service_read, to_client, exchange_queue, shared),
                    )
                    .map(|_| ())
                }
                Protocol::Tcp => {
                    let fault = shared.decide(None, None);
                    // Owning the queue, the copy closes it when the client is done, so the
                    // service sees the client's half-close.
                    let requests =
                        async move { raw(client_read, BytesMut::new(), &to_service).await };
                    tokio::try_join!(
                        requests,
                        write_out(
                            &mut service_write,
                            to_service_queue,
                            shared,
                            Direction::ToService
                        ),
                        tcp_responses(service_read, to_client, fault, shared),
                    )
                    .map(|_| ())
                }
            };
            // Finished cleanly: the writer towards the client ends the connection.
            if result.is_ok() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            ending = write_out(&mut client_write, to_client_queue, shared, Direction::ToClient) => {
                ending.unwrap_or(Ending::Done)
            }
            () = others => Ending::Done,
        }
    };
    if ending == Ending::Reset {
        let _ = client.set_zero_linger();
    }
}

/// Reads more into `buf`; `Ok(true)` at the end of the stream.
async fn fill<R: AsyncRead + Unpin>(from: &mut R, buf: &mut BytesMut) -> io::Result<bool> {
    buf.reserve(READ_SIZE);
    let n = tokio::time::timeout(IDLE_TIMEOUT, from.read_buf(buf))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connection idle"))??;
    Ok(n == 0)
}

async fn send(to: &Sender, out: Out) -> io::Result<()> {
    to.send(out)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "writer gone"))
}

async fn data(to: &Sender, bytes: Bytes) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    send(to, Out::Data(bytes, Instant::now())).await
}

/// Passes `buf`, then everything else `from` sends, on unchanged until the end of the stream.
async fn raw<R: AsyncRead + Unpin>(mut from: R, mut buf: BytesMut, to: &Sender) -> io::Result<()> {
    loop {
        data(to, buf.split().freeze()).await?;
        if fill(&mut from, &mut buf).await? {
            return data(to, buf.split().freeze()).await;
        }
    }
}

/// The client's side of an HTTP connection: each request head is parsed and its fault
/// decided; requests are forwarded unchanged, except those answered in the service's place.
async fn http_requests<R: AsyncRead + Unpin>(
    mut from: R,
    to: Sender,
    exchanges: mpsc::UnboundedSender<Exchange>,
    shared: &Shared,
) -> io::Result<()> {
    let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "response side gone");
    let mut buf = BytesMut::new();
    let mut eof = false;
    loop {
        let head = loop {
            match http::request_head(&mut buf) {
                Ok(Some(head)) => break head,
                Ok(None) if eof => return data(&to, buf.split().freeze()).await,
                Ok(None) => eof = fill(&mut from, &mut buf).await?,
                Err(NotHttp) => {
                    exchanges.send(Exchange::Raw).map_err(|_| gone())?;
                    return raw(from, buf, &to).await;
                }
            }
        };
        let fault = shared.decide(Some(&head.method), Some(&head.path));
        if let Some(Fault::Status(status)) = fault {
            // The body is read and dropped (unless the client waits to be asked for it), so
            // the client is not cut off while it still sends.
            if !head.expects_continue {
                let mut body = BodyReader::new(head.framing);
                loop {
                    match body.next(&mut buf, eof) {
                        Ok(Some(Piece::End)) | Err(NotHttp) => break,
                        Ok(Some(_)) => {}
                        Ok(None) => eof = fill(&mut from, &mut buf).await?,
                    }
                }
            }
            shared.fault_applied();
            exchanges
                .send(Exchange::Canned(status))
                .map_err(|_| gone())?;
            return Ok(());
        }
        exchanges
            .send(Exchange::Forwarded {
                method: head.method.clone(),
                fault,
            })
            .map_err(|_| gone())?;
        data(&to, head.raw).await?;
        if head.upgrade {
            return raw(from, buf, &to).await;
        }
        let mut body = BodyReader::new(head.framing);
        loop {
            match body.next(&mut buf, eof) {
                Ok(Some(Piece::End)) => break,
                Ok(Some(
                    Piece::Data(b) | Piece::Framing(b) | Piece::ChunkHeader { raw: b, .. },
                )) => {
                    data(&to, b).await?;
                }
                Ok(None) => eof = fill(&mut from, &mut buf).await?,
                Err(NotHttp) => return raw(from, buf, &to).await,
            }
        }
    }
}

/// The service's side of an HTTP connection: each response is matched with its request and
/// passed on, with that request's fault applied.
async fn http_responses<R: AsyncRead + Unpin>(
    mut from: R,
    to: Sender,
    mut exchanges: mpsc::UnboundedReceiver<Exchange>,
    shared: &Shared,
) -> io::Result<()> {
    let mut buf = BytesMut::new();
    let mut eof = false;
    loop {
        // Waiting for the next request, the service may still close the connection (an
        // idle keep-alive timeout) or say something unasked: pass either on. A request's
        // exchange is queued before the request goes out, so bytes of its answer never
        // come before it.
        let exchange = loop {
            match exchanges.try_recv() {
                Ok(exchange) => break Some(exchange),
                Err(mpsc::error::TryRecvError::Disconnected) => break None,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if !buf.is_empty() {
                data(&to, buf.split().freeze()).await?;
            }
            if eof {
                return Ok(());
            }
            tokio::select! {
                biased;
                exchange = exchanges.recv() => break exchange,
                end = fill(&mut from, &mut buf) => eof = end?,
            }
        };
        // No exchange: the client sends nothing more; pass on what the service still sends.
        let (method, fault) = match exchange {
            None | Some(Exchange::Raw) => return raw(from, buf, &to).await,
            Some(Exchange::Canned(status)) => {
                data(&to, http::canned_response(status)).await?;
                return send(&to, Out::Close).await;
            }
            Some(Exchange::Forwarded { method, fault }) => (method, fault),
        };
        let head = loop {
            match http::response_head(&mut buf, &method) {
                Ok(Some(head)) if head.status == 101 => {
                    data(&to, head.raw).await?;
                    return raw(from, buf, &to).await;
                }
                // Interim responses (100 Continue) precede the real one.
                Ok(Some(head)) if (100..200).contains(&head.status) => {
                    data(&to, head.raw).await?;
                }
                Ok(Some(head)) => break head,
                Ok(None) if eof => return data(&to, buf.split().freeze()).await,
                Ok(None) => eof = fill(&mut from, &mut buf).await?,
                Err(NotHttp) => return raw(from, buf, &to).await,
            }
        };
        let mut body = FaultyBody::new(fault, head.framing, shared);
        if let Some(hold) = body.stall() {
            send(&to, Out::Hold(hold)).await?;
        }
        data(&to, body.head(head.raw)).await?;
        let mut reader = BodyReader::new(head.framing);
        loop {
            let piece = match reader.next(&mut buf, eof) {
                Ok(Some(piece)) => piece,
                Ok(None) => {
                    eof = fill(&mut from, &mut buf).await?;
                    continue;
                }
                Err(NotHttp) => return raw(from, buf, &to).await,
            };
            let end = piece == Piece::End;
            for out in body.pass(piece) {
                let stop = matches!(out, Out::Close | Out::Reset);
                send(&to, out).await?;
                if stop {
                    return Ok(());
                }
            }
            if end {
                break;
            }
        }
        if head.framing == Framing::UntilClose {
            return Ok(());
        }
    }
}

/// The service's side of a TCP connection: its bytes are one body, with the connection's
/// fault applied.
async fn tcp_responses<R: AsyncRead + Unpin>(
    mut from: R,
    to: Sender,
    fault: Option<Fault>,
    shared: &Shared,
) -> io::Result<()> {
    if let Some(Fault::Status(_)) = fault {
        shared.fault_applied();
        return send(&to, Out::Reset).await;
    }
    let mut body = FaultyBody::new(fault, Framing::UntilClose, shared);
    if let Some(hold) = body.stall() {
        send(&to, Out::Hold(hold)).await?;
    }
    let mut buf = BytesMut::new();
    loop {
        let eof = fill(&mut from, &mut buf).await?;
        let mut pieces = vec![Piece::Data(buf.split().freeze())];
        if eof {
            pieces.push(Piece::End);
        }
        for piece in pieces {
            for out in body.pass(piece) {
                let stop = matches!(out, Out::Close | Out::Reset);
                send(&to, out).await?;
                if stop {
                    return Ok(());
                }
            }
        }
        if eof {
            return Ok(());
        }
    }
}

/// A response body on its way to the client, with a fault applied to it.
struct FaultyBody<'a> {
    fault: Option<Fault>,
    framing: Framing,
    shared: &'a Shared,
    /// Body bytes seen so far.
    pos: u64,
    /// The body has been cut short: the rest is read and dropped.
    cut: bool,
    /// The fault has been counted already.
    counted: bool,
}

impl<'a> FaultyBody<'a> {
    fn new(fault: Option<Fault>, framing: Framing, shared: &'a Shared) -> Self {
        Self {
            fault,
            framing,
            shared,
            pos: 0,
            cut: false,
            counted: false,
        }
    }

    /// How long to hold the response back before its first byte.
    fn stall(&self) -> Option<Duration> {
        match self.fault {
            Some(Fault::Stall(hold)) => {
                self.shared.fault_applied();
                Some(hold)
            }
            _ => None,
        }
    }

    /// The response head to send: with `Content-Length` shortened when the body will be
    /// truncated.
    fn head(&mut self, raw: Bytes) -> Bytes {
        match (self.fault, self.framing) {
            (Some(Fault::Truncate { after }), Framing::Length(len)) if len > after => {
                // Counted now: the client may see the whole (shortened) response before the
                // rest of the real body has even arrived.
                self.shared.fault_applied();
                self.counted = true;
                http::with_content_length(&raw, after)
            }
            _ => raw,
        }
    }

    /// What to send for the next piece of the body.
    fn pass(&mut self, piece: Piece) -> Vec<Out> {
        let now = Instant::now();
        let rechunk = matches!(
            (self.fault, self.framing),
            (Some(Fault::Truncate { .. }), Framing::Chunked)
        );
        match piece {
            Piece::Data(bytes) => self.data(bytes, rechunk, now),
            // Chunk framing is rewritten when truncating a chunked body (each piece of data
            // becomes a chunk of its own) and passed on unchanged otherwise.
            Piece::ChunkHeader { raw, .. } | Piece::Framing(raw) => {
                if rechunk || self.cut {
                    Vec::new()
                } else {
                    vec![Out::Data(raw, now)]
                }
            }
            Piece::End if rechunk && !self.cut => {
                vec![Out::Data(Bytes::from_static(b"0\r\n\r\n"), now)]
            }
            Piece::End if self.framing == Framing::UntilClose => vec![Out::Close],
            Piece::End => Vec::new(),
        }
    }

    fn data(&mut self, bytes: Bytes, rechunk: bool, now: Instant) -> Vec<Out> {
        let start = self.pos;
        let len = bytes.len() as u64;
        self.pos += len;
        if self.cut {
            return Vec::new();
        }
        let chunk = |b: Bytes| -> Vec<Out> {
            if b.is_empty() {
                Vec::new()
            } else if rechunk {
                let mut framed = BytesMut::with_capacity(b.len() + 16);
                framed.extend_from_slice(format!("{:x}\r\n", b.len()).as_bytes());
                framed.extend_from_slice(&b);
                framed.extend_from_slice(b"\r\n");
                vec![Out::Data(framed.freeze(), now)]
            } else {
                vec![Out::Data(b, now)]
            }
        };
        let keep = |after: u64| usize::try_from(after - start).unwrap_or(usize::MAX);
        match self.fault {
            Some(Fault::Flip { at }) if (start..start + len).contains(&at) => {
                let mut changed = bytes.to_vec();
                changed[keep(at)] ^= 0x01;
                self.shared.fault_applied();
                chunk(changed.into())
            }
            Some(Fault::Drop { after }) if start + len > after => {
                self.shared.fault_applied();
                self.cut = true;
                let mut out = chunk(bytes.slice(..keep(after)));
                out.push(Out::Reset);
                out
            }
            Some(Fault::Truncate { after }) if start + len > after => {
                if !self.counted {
                    self.shared.fault_applied();
                }
                self.cut = true;
                let mut out = chunk(bytes.slice(..keep(after)));
                match self.framing {
                    Framing::Chunked => out.push(Out::Data(Bytes::from_static(b"0\r\n\r\n"), now)),
                    Framing::UntilClose => out.push(Out::Close),
                    Framing::Length(_) | Framing::Empty => {}
                }
                out
            }
            _ => chunk(bytes),
        }
    }
}
