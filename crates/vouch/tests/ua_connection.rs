//! The UA driver's connection to its proxy (RFC 3261 §18.3): run as the server runs its own,
//! with a write timeout, a bounded send queue and the parser limits of the UA's configuration.
//! The proxy here is a bare TCP listener, so the test decides what it reads and sends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use vouch::cert_fetch::FetchConfig;
use vouch::ua::{CertificateSource, SEND_QUEUE, Timeouts, UaHandle, UaOutput, UaTransport};
use vouch_msg::{Limits, StreamDecoder};
use vouch_proto::endpoint::{Peer, TransportKind};
use vouch_proto::ua::UaConfig;

use support::read_message;

/// Starts a UA over TCP to `proxy`, its configuration edited by `edit`.
async fn start(
    proxy: SocketAddr,
    timeouts: Timeouts,
    edit: impl FnOnce(&mut UaConfig) + Send + 'static,
) -> (UaHandle, mpsc::UnboundedReceiver<UaOutput>) {
    let transport = UaTransport::Tcp {
        bind: "127.0.0.1:0".parse().unwrap(),
        proxy,
        timeouts,
    };
    UaHandle::start_on(
        transport,
        CertificateSource::None,
        FetchConfig::default(),
        move |local| {
            let mut c = UaConfig::new(
                "sip:alice@atlanta.example",
                (TransportKind::Tcp, local),
                Peer::new(TransportKind::Tcp, proxy),
            );
            edit(&mut c);
            c
        },
    )
    .await
    .unwrap()
}

/// The reason of the UA's `Closed` output, waiting at most `limit` for it.
async fn closed_reason(out: &mut mpsc::UnboundedReceiver<UaOutput>, limit: Duration) -> String {
    let wait = async {
        loop {
            match out.recv().await.expect("the UA reports why it stopped") {
                UaOutput::Closed { reason } => return reason,
                _ => continue,
            }
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .unwrap_or_else(|_| panic!("the UA still had its connection after {limit:?}"))
}

/// Starts a UA under `timeouts` to a proxy that accepts its connection and never reads from
/// it, has it place `calls` calls whose INVITEs carry `sdp`, and returns the proxy's address
/// and why the UA closed the connection (waiting at most 20 s).
async fn flood_a_proxy_that_never_reads(
    timeouts: Timeouts,
    sdp: String,
    calls: usize,
) -> (SocketAddr, String) {
    let socket = TcpSocket::new_v4().unwrap();
    // A small window, so the kernel holds little of what the UA writes.
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let proxy = listener.local_addr().unwrap();
    let (ua, mut out) = start(proxy, timeouts, move |c| c.sdp = Bytes::from(sdp)).await;
    let (_unread, _) = listener.accept().await.unwrap();
    ua.with(move |u, now| {
        for _ in 0..calls {
            u.call(now, "sip:bob@biloxi.example").unwrap();
        }
    })
    .await
    .unwrap();
    (
        proxy,
        closed_reason(&mut out, Duration::from_secs(20)).await,
    )
}

/// A proxy that accepts the connection and never reads from it: once the socket buffers are
/// full the UA's write cannot finish, and the UA gives up after its write timeout instead of
/// waiting for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_stops_reading_is_given_up_after_the_write_timeout() {
    let write = Duration::from_millis(300);
    let timeouts = Timeouts {
        write,
        ..Timeouts::default()
    };
    // INVITEs of 60 KB each (within the 64 KiB message limit); 32 MB of them: far more than
    // the UA's send buffer and the proxy's receive buffer hold.
    let sdp = format!("v=0\r\n{}\r\n", "a=x".repeat(20_000));
    let (proxy, reason) = flood_a_proxy_that_never_reads(timeouts, sdp, (32 << 20) / 60_000).await;
    assert_eq!(
        reason,
        format!("TCP connection to {proxy}: write timed out after {write:?}")
    );
}

/// A proxy that never reads, and a UA that queues more messages than its queue holds long
/// before its write timeout: the UA gives up on the connection when the queue is full instead
/// of growing it without limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_stops_reading_is_given_up_when_the_send_queue_is_full() {
    // Far longer than the test waits: only the queue's bound can end the connection.
    let timeouts = Timeouts {
        write: Duration::from_secs(600),
        ..Timeouts::default()
    };
    // INVITEs of 8 KB each: three queues' worth is 24 MB, far more than the kernel's socket
    // buffers (4 MB at most here) and a write batch hold besides a full queue.
    let sdp = format!("v=0\r\n{}\r\n", "a=x".repeat(2_700));
    let (proxy, reason) = flood_a_proxy_that_never_reads(timeouts, sdp, 3 * SEND_QUEUE).await;
    assert_eq!(
        reason,
        format!(
            "TCP connection to {proxy}: send queue full ({SEND_QUEUE} messages waiting to be \
             written)"
        )
    );
}

/// An out-of-dialog OPTIONS with a body of `body_len` bytes, over TCP.
fn options(body_len: usize) -> Vec<u8> {
    let mut m = format!(
        "OPTIONS sip:alice@atlanta.example SIP/2.0\r\n\
         Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-big\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:carol@chicago.example>;tag=c1\r\n\
         To: <sip:alice@atlanta.example>\r\n\
         Call-ID: big-options\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: {body_len}\r\n\r\n"
    )
    .into_bytes();
    m.resize(m.len() + body_len, b'x');
    m
}

/// The UA frames (and parses) what comes over its connection with the limits of its
/// configuration: a request larger than the default limit (64 KiB) but within the configured
/// one is taken and answered, not refused with 513 nor a framing error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ua_reads_its_connection_with_the_configured_limits() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    let limits = Limits {
        max_message_size: 256 * 1024,
        ..Limits::DEFAULT
    };
    let (_ua, _out) = start(proxy, Timeouts::default(), move |c| c.limits = limits).await;
    let (mut conn, _) = listener.accept().await.unwrap();

    let request = options(100_000);
    assert!(request.len() > Limits::DEFAULT.max_message_size);
    conn.write_all(&request).await.unwrap();

    let response = read_message(&mut conn, &mut StreamDecoder::new(Limits::DEFAULT)).await;
    assert_eq!(
        response.status(),
        Some(200),
        "{}",
        String::from_utf8_lossy(response.as_bytes())
    );
}

/// Starts a UA pinging every 100 ms and waiting 300 ms for each pong, to a bare TCP proxy;
/// the proxy's side of the connection is handed to `proxy_side`, which decides what it
/// answers. Returns why the UA closed its connection, or `None` if it still has it after
/// `watch`.
async fn keepalive_run<F, Fut>(proxy_side: F, watch: Duration) -> Option<String>
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    let timeouts = Timeouts {
        keepalive: Duration::from_millis(100),
        pong: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let (_ua, mut out) = start(proxy, timeouts, |_| {}).await;
    let (conn, _) = listener.accept().await.unwrap();
    tokio::spawn(proxy_side(conn));
    let wait = async {
        loop {
            match out.recv().await {
                Some(UaOutput::Closed { reason }) => return reason,
                Some(_) => continue,
                None => std::future::pending::<()>().await,
            }
        }
    };
    tokio::time::timeout(watch, wait).await.ok()
}

/// RFC 5626 §4.4.1: a proxy that reads the pings but never answers them with a pong has a
/// failed flow, and the UA gives the connection up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_never_answers_a_ping_fails_the_flow() {
    let reason = keepalive_run(
        |mut conn| async move {
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut conn, &mut sink).await;
        },
        Duration::from_secs(10),
    )
    .await
    .expect("the UA gave the connection up");
    assert!(
        reason.contains("no keep-alive pong within 300ms"),
        "{reason}"
    );
}

/// A proxy that answers every CRLFCRLF ping with a CRLF pong keeps the flow: after a dozen
/// pings the UA still has its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_answers_each_ping_keeps_the_flow() {
    let reason = keepalive_run(
        |mut conn| async move {
            let mut buf = [0u8; 4096];
            let mut crlfs = 0usize;
            loop {
                let n = match tokio::io::AsyncReadExt::read(&mut conn, &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                crlfs += buf[..n].iter().filter(|&&b| b == b'\n').count();
                // Two LFs to a ping: one pong for each whole ping.
                while crlfs >= 2 {
                    crlfs -= 2;
                    if conn.write_all(b"\r\n").await.is_err() {
                        return;
                    }
                }
            }
        },
        Duration::from_millis(1500),
    )
    .await;
    assert_eq!(
        reason, None,
        "the UA closed a flow whose pings were answered"
    );
}
