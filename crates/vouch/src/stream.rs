//! One TCP or TLS connection carrying SIP (RFC 3261 §18), for the server's connections and the
//! user agent's connection to its proxy alike: `connect` opens one (the TCP connect, then
//! for TLS the handshake, each under a timeout) and `run` carries messages over it until it
//! ends. Received bytes are cut into messages by Content-Length ([`StreamDecoder`], §18.3; a
//! framing error closes the connection, since the stream can no longer be resynchronised),
//! queued messages are written under a write timeout, and RFC 5626 §4.4.1 CRLFCRLF
//! keep-alive pings are answered (server) or sent (user agent, which treats the flow as
//! failed when no CRLF pong comes back in time).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;
use vouch_msg::{Limits, ParseError, StreamDecoder};

use crate::flows::CertChain;

/// How long opening a connection and writing to it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The TCP connect, and the TLS handshake after it (each).
    pub connect: Duration,
    /// Writing what was queued (a batch of messages, a keep-alive): a peer that stops reading
    /// must not hold the connection, and what is queued for it, for ever.
    pub write: Duration,
    /// How often a user agent pings its proxy ([`KEEPALIVE`]; a server only answers pings).
    pub keepalive: Duration,
    /// How long a user agent's ping waits for its pong before the flow counts as failed
    /// ([`PONG_WITHIN`]).
    pub pong: Duration,
}

/// How often a CRLFCRLF keep-alive goes over a user agent's connection to its proxy
/// (RFC 5626 §4.4.1).
pub const KEEPALIVE: Duration = Duration::from_secs(60);

/// How long a keep-alive ping waits for its pong: RFC 5626 §4.4.1's 10 seconds.
pub const PONG_WITHIN: Duration = Duration::from_secs(10);

impl Timeouts {
    /// `connect`, and writes allowed as long but never less than 5 s (a short connect timeout
    /// says nothing of how fast a busy peer drains a burst).
    pub fn new(connect: Duration) -> Self {
        Timeouts {
            connect,
            write: connect.max(Duration::from_secs(5)),
            keepalive: KEEPALIVE,
            pong: PONG_WITHIN,
        }
    }
}

impl Default for Timeouts {
    /// 10 s for each.
    fn default() -> Self {
        Timeouts::new(Duration::from_secs(10))
    }
}

/// An open connection: TCP, or TLS over TCP.
pub(crate) type Stream = Either<TcpStream, TlsStream<TcpStream>>;

/// What [`connect`] opened.
#[derive(Debug)]
pub(crate) struct Connected {
    pub(crate) stream: Stream,
    /// The local address.
    pub(crate) local: SocketAddr,
    /// The server's certificate chain (TLS).
    pub(crate) peer_certificates: Option<CertChain>,
}

/// Why [`connect`] failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("cannot bind: {0}")]
    Bind(io::Error),
    #[error("connect failed: {0}")]
    Connect(io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
    #[error("TLS handshake timed out")]
    HandshakeTimeout,
}

impl From<ConnectError> for io::Error {
    fn from(e: ConnectError) -> Self {
        let kind = match &e {
            ConnectError::Bind(e) | ConnectError::Connect(e) | ConnectError::Handshake(e) => {
                e.kind()
            }
            ConnectError::ConnectTimeout | ConnectError::HandshakeTimeout => {
                io::ErrorKind::TimedOut
            }
        };
        io::Error::new(kind, e)
    }
}

/// Opens a TCP connection to `addr` (from `bind` when given) and, with `tls`, a TLS connection
/// over it, each step under `timeout`. The server certificate must name `addr`'s IP address:
/// callers have an address, not a host name (RFC 5922 §7.3 names would need the host that
/// was resolved).
pub(crate) async fn connect(
    bind: Option<SocketAddr>,
    addr: SocketAddr,
    tls: Option<Arc<ClientConfig>>,
    timeout: Duration,
) -> Result<Connected, ConnectError> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(ConnectError::Bind)?;
    if let Some(bind) = bind {
        socket.bind(bind).map_err(ConnectError::Bind)?;
    }
    let tcp = tokio::time::timeout(timeout, socket.connect(addr))
        .await
        .map_err(|_| ConnectError::ConnectTimeout)?
        .map_err(ConnectError::Connect)?;
    // SIP messages are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().map_err(ConnectError::Connect)?;
    let Some(client) = tls else {
        return Ok(Connected {
            stream: Either::Left(tcp),
            local,
            peer_certificates: None,
        });
    };
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = tokio::time::timeout(timeout, TlsConnector::from(client).connect(name, tcp))
        .await
        .map_err(|_| ConnectError::HandshakeTimeout)?
        .map_err(ConnectError::Handshake)?;
    let peer_certificates = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.to_vec().into());
    Ok(Connected {
        stream: Either::Right(tls),
        local,
        peer_certificates,
    })
}

/// The keep-alive role (RFC 5626 §4.4.1).
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeepAlive {
    /// Answer each CRLFCRLF ping with a CRLF pong: the server.
    Answer,
    /// Send a CRLFCRLF ping every `every` less up to 20 % (drawn per ping), and close the connection when no CRLF pong
    /// comes back within `pong_within` (RFC 5626 §4.4.1: 10 s) — or, when that time ends
    /// while a message is arriving, by the end of that message: a user agent keeping its flow
    /// to the proxy open. Pongs are skipped by the decoder and never answered.
    Send {
        every: Duration,
        pong_within: Duration,
    },
}

/// How [`run`] runs a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Parser limits for the framing (a larger message is a framing error).
    pub(crate) limits: Limits,
    /// See [`Timeouts::write`].
    pub(crate) write_timeout: Duration,
    /// Closed when nothing has been read for this long; `None`: never.
    pub(crate) idle: Option<Duration>,
    pub(crate) keepalive: KeepAlive,
}

/// Messages a connection's queue holds by default (the server's `[transport] send_queue`; the
/// user agent's always): the write timeout bounds how long a peer that stops reading holds
/// the queue, this how much it holds meanwhile.
pub const SEND_QUEUE: usize = 1024;

/// Why [`run`] ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Closed {
    /// `stop` resolved.
    #[error("stopping")]
    Stopped,
    /// The queue of outgoing messages closed.
    #[error("no more to send")]
    NoMoreToSend,
    /// `deliver` refused a message.
    #[error("no one takes the messages")]
    Undelivered,
    #[error("closed by the peer")]
    ByPeer,
    #[error("idle timeout")]
    Idle,
    #[error("read failed: {0}")]
    Read(io::Error),
    #[error("write failed: {0}")]
    Write(io::Error),
    #[error("write timed out after {0:?}")]
    WriteTimeout(Duration),
    /// The queue of messages waiting to be written was full (closed by the sender, not by
    /// [`run`]).
    #[error("send queue full ({0} messages waiting to be written)")]
    QueueFull(usize),
    #[error("framing error: {0}")]
    Framing(ParseError),
    /// RFC 5626 §4.4.1: the flow failed.
    #[error("no keep-alive pong within {0:?} of the ping (RFC 5626 §4.4.1)")]
    NoPong(Duration),
}

/// Most queued messages written before one flush.
const WRITE_BATCH: usize = 64;

/// Carries messages over `stream` until it closes, fails (to read, to write within the write
/// timeout, to frame), idles out, `outgoing` closes, `deliver` (given each received message)
/// returns false, or `stop` resolves. `on_close` hears why before the write side is shut down
/// (which may take a second), so the caller can forget the connection at once.
pub(crate) async fn run<S, D, F>(
    stream: S,
    settings: Settings,
    outgoing: &mut mpsc::Receiver<Bytes>,
    mut deliver: D,
    stop: impl Future<Output = ()>,
    on_close: impl FnOnce(&Closed),
) where
    S: AsyncRead + AsyncWrite + Unpin,
    D: FnMut(Bytes) -> F,
    F: Future<Output = bool>,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut decoder = StreamDecoder::new(settings.limits);
    let mut buf = vec![0u8; 16 * 1024];
    let mut answered_lf = 0u64;
    let next_ping = || match settings.keepalive {
        KeepAlive::Send { every, .. } => Some(Instant::now() + jittered(every)),
        KeepAlive::Answer => None,
    };
    let mut ping_at = next_ping();
    let mut pong: Option<AwaitedPong> = None;
    let idle_from_now = || settings.idle.map(|d| Instant::now() + d);
    let mut idle_deadline = idle_from_now();
    tokio::pin!(stop);
    let closed = 'conn: loop {
        tokio::select! {
            () = &mut stop => break 'conn Closed::Stopped,
            out = outgoing.recv() => {
                let Some(first) = out else { break 'conn Closed::NoMoreToSend };
                let mut batch = vec![first];
                while batch.len() < WRITE_BATCH {
                    match outgoing.try_recv() {
                        Ok(b) => batch.push(b),
                        Err(_) => break,
                    }
                }
                let chunks = batch.iter().map(|b| &b[..]);
                if let Err(c) = write(&mut wr, chunks, settings.write_timeout).await {
                    break 'conn c;
                }
            }
            () = until(ping_at) => {
                ping_at = next_ping();
                let ping = std::iter::once(&b"\r\n\r\n"[..]);
                if let Err(c) = write(&mut wr, ping, settings.write_timeout).await {
                    break 'conn c;
                }
                if let KeepAlive::Send { pong_within, .. } = settings.keepalive
                    && pong.is_none()
                {
                    pong = Some(AwaitedPong {
                        crlfs_before: decoder.keepalives_seen(),
                        deadline: Some(Instant::now() + pong_within),
                    });
                }
            }
            () = until(pong.as_ref().and_then(|p| p.deadline)) => {
                if decoder.buffered() == 0 {
                    break 'conn Closed::NoPong(pong_wait(settings.keepalive));
                }
                // A message is arriving: the pong may follow it.
                if let Some(p) = &mut pong {
                    p.deadline = None;
                }
            }
            r = read(&mut rd, &mut buf, idle_deadline) => {
                let n = match r {
                    None => break 'conn Closed::Idle,
                    Some(Ok(0)) => break 'conn Closed::ByPeer,
                    Some(Ok(n)) => n,
                    Some(Err(e)) => break 'conn Closed::Read(e),
                };
                idle_deadline = idle_from_now();
                decoder.push(&buf[..n]);
                loop {
                    match decoder.decode() {
                        Ok(Some(msg)) => {
                            if !deliver(msg.as_bytes().clone()).await {
                                break 'conn Closed::Undelivered;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => break 'conn Closed::Framing(e),
                    }
                }
                if let Some(p) = &pong {
                    if decoder.keepalives_seen() > p.crlfs_before {
                        pong = None;
                    } else if p.deadline.is_none() && decoder.buffered() == 0 {
                        // The time ran out mid-message, the message is read, no pong.
                        break 'conn Closed::NoPong(pong_wait(settings.keepalive));
                    }
                }
                if matches!(settings.keepalive, KeepAlive::Answer) {
                    // Each CRLFCRLF ping is answered with one CRLF pong.
                    let pings = (decoder.keepalives_seen() - answered_lf) / 2;
                    if pings > 0 {
                        answered_lf += pings * 2;
                        let pongs = std::iter::repeat_n(&b"\r\n"[..], pings as usize);
                        if let Err(c) = write(&mut wr, pongs, settings.write_timeout).await {
                            break 'conn c;
                        }
                    }
                }
            }
        }
    };
    on_close(&closed);
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
}

/// Writes `chunks` and flushes, within `timeout`.
async fn write<'a, W: AsyncWrite + Unpin>(
    wr: &mut W,
    chunks: impl Iterator<Item = &'a [u8]>,
    timeout: Duration,
) -> Result<(), Closed> {
    let write = async {
        for c in chunks {
            wr.write_all(c).await?;
        }
        wr.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Closed::Write(e)),
        Err(_) => Err(Closed::WriteTimeout(timeout)),
    }
}

/// Reads into `buf`; `None` once `deadline` (when there is one) passes first.
async fn read<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> Option<io::Result<usize>> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, rd.read(buf)).await.ok(),
        None => Some(rd.read(buf).await),
    }
}

/// A keep-alive ping waiting for its pong (RFC 5626 §4.4.1).
struct AwaitedPong {
    /// CRLFs the decoder had skipped when the ping went: one more is the pong.
    crlfs_before: u64,
    /// When the pong is due; `None` once that passed while a message was arriving, so the
    /// pong is due by the end of that message.
    deadline: Option<Instant>,
}

/// Resolves at `deadline`; never without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The time a ping waits for its pong.
fn pong_wait(keepalive: KeepAlive) -> Duration {
    match keepalive {
        KeepAlive::Send { pong_within, .. } => pong_within,
        KeepAlive::Answer => Duration::ZERO,
    }
}

/// A keep-alive interval drawn afresh for each ping between `upper` and 20 % less: RFC 5626
/// §4.4.1 requires the randomness, so the pings of many UAs restarted together spread out.
fn jittered(upper: Duration) -> Duration {
    use std::hash::BuildHasher;
    // A fresh RandomState is randomly keyed: random enough to spread pings, no dependency.
    let r = std::collections::hash_map::RandomState::new().hash_one(0u8);
    let fraction = (r % 1_000_001) as f64 / 1_000_000.0;
    upper.mul_f64(1.0 - 0.2 * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_intervals_fall_between_the_bound_and_20_percent_less_and_vary() {
        let upper = Duration::from_secs(60);
        let drawn: Vec<Duration> = (0..200).map(|_| jittered(upper)).collect();
        assert!(
            drawn
                .iter()
                .all(|d| *d <= upper && *d >= Duration::from_secs(48))
        );
        let distinct: std::collections::HashSet<_> = drawn.iter().collect();
        assert!(distinct.len() > 100, "{} distinct of 200", distinct.len());
    }
}
