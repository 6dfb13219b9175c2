//! Shared by the tests that run vouch servers in-process over real sockets on 127.0.0.1: raw
//! SIP exchanges, digest registration, a phone that answers every INVITE, and reading a
//! framed message from a connection.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use vouch::Server;
use vouch::engine::TransportKind;
use vouch_auth::digest::{Algorithm, Responder, ResponderConfig};
use vouch_msg::headers::auth::{AuthenticationInfo, Challenge};
use vouch_msg::{HeaderName, Message, StreamDecoder};

/// Reads one framed SIP message from a stream.
pub async fn read_message<S: AsyncRead + Unpin>(s: &mut S, dec: &mut StreamDecoder) -> Message {
    let mut buf = vec![0u8; 8192];
    loop {
        if let Some(m) = dec.decode().unwrap() {
            return m;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("no message within 5 s")
            .unwrap();
        assert!(n > 0, "connection closed before a message");
        dec.push(&buf[..n]);
    }
}

pub fn udp_addr(s: &Server) -> SocketAddr {
    s.local_addrs()
        .iter()
        .find(|(k, _)| *k == TransportKind::Udp)
        .unwrap()
        .1
}

pub fn values(m: &Message, name: HeaderName) -> Vec<String> {
    m.headers_named(name).map(|h| h.value.to_owned()).collect()
}

pub fn responder(username: &str, password: &str) -> Responder {
    Responder::new(ResponderConfig {
        username: username.into(),
        password: password.into(),
        algorithms: Algorithm::STRONGEST_FIRST.to_vec(),
        require_mutual_auth: true,
    })
}

/// Sends `msg` and returns the final response for CSeq `cseq` (1xx and stray
/// retransmissions of earlier transactions skipped).
pub async fn exchange(sock: &UdpSocket, to: SocketAddr, msg: String, cseq: u32) -> Message {
    sock.send_to(msg.as_bytes(), to).unwrap();
    let sock = sock.try_clone().unwrap();
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, _) = sock.recv_from(&mut buf).expect("no response within 5 s");
            let m = Message::parse(buf[..n].to_vec()).unwrap();
            if m.status().is_some_and(|s| s >= 200) && m.cseq().seq == cseq {
                return m;
            }
        }
    })
    .await
    .unwrap()
}

/// Registers `user@domain` (contact: `phone`'s socket) at `registrar` with digest, and checks
/// the registrar's Authentication-Info proves it.
pub async fn register_with_digest(
    phone: &UdpSocket,
    registrar: SocketAddr,
    (user, domain, password): (&str, &str, &str),
) {
    let port = phone.local_addr().unwrap().port();
    let register = |cseq: u32, auth: &[String]| {
        let auth: String = auth
            .iter()
            .map(|a| format!("Authorization: {a}\r\n"))
            .collect();
        format!(
            "REGISTER sip:{domain} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{user}-reg-{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{domain}>;tag=b\r\n\
             To: <sip:{user}@{domain}>\r\n\
             Call-ID: {user}-register\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@127.0.0.1:{port}>\r\n\
             {auth}Expires: 600\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let r = exchange(phone, registrar, register(1, &[]), 1).await;
    assert_eq!(r.status(), Some(401), "{r:?}");
    let ch = values(&r, HeaderName::WwwAuthenticate);
    let ch: Vec<Challenge<'_>> = ch.iter().map(|v| Challenge::parse(v).unwrap()).collect();
    let mut b = responder(user, password);
    b.handle_challenges(&ch).unwrap();
    let creds = b.authorize("REGISTER", &format!("sip:{domain}"), b"", 11);
    let r = exchange(phone, registrar, register(2, &creds), 2).await;
    assert_eq!(r.status(), Some(200), "{r:?}");
    let infos = values(&r, HeaderName::AuthenticationInfo);
    let infos: Vec<AuthenticationInfo<'_>> = infos
        .iter()
        .map(|v| AuthenticationInfo::parse(v).unwrap())
        .collect();
    assert_eq!(b.check_infos(&infos, b"").unwrap().len(), 1);
}

/// bob's phone: answers every INVITE with 200, copying Via, Record-Route, From, To (with a
/// tag), Call-ID and CSeq line by line. Returns the INVITEs it received.
pub fn spawn_uas(bob: UdpSocket) -> Arc<Mutex<Vec<Message>>> {
    let received = Arc::new(Mutex::new(Vec::new()));
    let seen = received.clone();
    bob.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = bob.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        // Ends with the test: after a quiet stretch once the test has dropped `seen`.
        loop {
            let Ok((n, from)) = bob.recv_from(&mut buf) else {
                if Arc::strong_count(&received) == 1 {
                    return;
                }
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("INVITE ") {
                continue;
            }
            received
                .lock()
                .unwrap()
                .push(Message::parse(buf[..n].to_vec()).unwrap());
            let mut out = String::from("SIP/2.0 200 OK\r\n");
            for line in text.split("\r\n") {
                let name = line.split(':').next().unwrap_or("").trim();
                match name.to_ascii_lowercase().as_str() {
                    "via" | "v" | "record-route" | "from" | "f" | "call-id" | "i" | "cseq" => {
                        out.push_str(line);
                        out.push_str("\r\n");
                    }
                    "to" | "t" => {
                        out.push_str(line);
                        out.push_str(";tag=bob-answers\r\n");
                    }
                    _ => {}
                }
            }
            out.push_str(&format!(
                "Contact: <sip:bob@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n"
            ));
            bob.send_to(out.as_bytes(), from).unwrap();
        }
    });
    seen
}
