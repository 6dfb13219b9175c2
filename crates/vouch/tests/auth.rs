//! Digest authentication in the driver: on by default, the nonce secret file is made once
//! (owner-only) and shared by nodes that name it, and users added to the store while the
//! server runs are taken up without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use vouch::Server;
use vouch::config::{Config, ListenAddr};
use vouch::engine::TransportKind;
use vouch::server::USERS_POLL;
use vouch::store::Store;
use vouch_auth::digest::{Algorithm, Responder, ResponderConfig};
use vouch_msg::headers::auth::{AuthenticationInfo, Challenge};
use vouch_msg::{HeaderName, Message};

const PASSWORD: &str = "wonderland";

/// A UDP-only server on a free port with its data in `data` and the nonce secret in `secret`.
async fn start(data: &Path, secret: &Path) -> Server {
    let mut config = Config {
        data_dir: data.to_path_buf(),
        listen: vec!["udp:127.0.0.1:0".parse::<ListenAddr>().unwrap()],
        ..Config::default()
    };
    config.auth.secret_file = Some(secret.to_path_buf());
    Server::start(&config, None).await.unwrap()
}

fn udp_addr(s: &Server) -> SocketAddr {
    s.local_addrs()
        .iter()
        .find(|(k, _)| *k == TransportKind::Udp)
        .unwrap()
        .1
}

fn register(port: u16, cseq: u32, authorization: Option<&str>) -> String {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:localhost SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-auth-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@localhost>;tag=a\r\n\
         To: <sip:alice@localhost>\r\n\
         Call-ID: auth-test\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:alice@127.0.0.1:{port}>\r\n\
         {auth}Expires: 600\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Sends `msg` to `to` and returns the final response (1xx skipped).
async fn exchange(ua: &UdpSocket, to: SocketAddr, msg: String) -> Message {
    ua.send_to(msg.as_bytes(), to).unwrap();
    let ua = ua.try_clone().unwrap();
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, _) = ua.recv_from(&mut buf).expect("no response within 5 s");
            let m = Message::parse(buf[..n].to_vec()).unwrap();
            if m.status().is_some_and(|s| s >= 200) {
                return m;
            }
        }
    })
    .await
    .unwrap()
}

fn challenges(m: &Message) -> Vec<String> {
    m.headers_named(HeaderName::WwwAuthenticate)
        .map(|h| h.value.to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_is_on_by_default_nodes_share_the_secret_and_new_users_are_taken_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (data_a, data_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let secret = tmp.path().join("shared/nonce.secret");
    Store::open(&data_a)
        .unwrap()
        .add_user("sip:alice@localhost", PASSWORD, None, &[])
        .unwrap();
    let a = start(&data_a, &secret).await;
    let b = start(&data_b, &secret).await;
    let made = std::fs::read(&secret).unwrap();
    assert_eq!(made.len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "secret file mode {mode:o}");
    }

    let ua = UdpSocket::bind("127.0.0.1:0").unwrap();
    ua.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = ua.local_addr().unwrap().port();

    // A challenges with every algorithm, strongest first, in realm localhost.
    let r = exchange(&ua, udp_addr(&a), register(port, 1, None)).await;
    assert_eq!(r.status(), Some(401), "{r:?}");
    let values = challenges(&r);
    let parsed: Vec<Challenge<'_>> = values
        .iter()
        .map(|v| Challenge::parse(v).unwrap())
        .collect();
    let algs: Vec<&str> = parsed
        .iter()
        .map(|c| c.algorithm.unwrap_or("MD5"))
        .collect();
    assert_eq!(algs, ["SHA-512-256", "SHA-256", "MD5"]);
    assert!(
        parsed
            .iter()
            .all(|c| c.realm.as_deref() == Some("localhost"))
    );

    let mut alice = Responder::new(ResponderConfig {
        username: "alice".into(),
        password: PASSWORD.into(),
        algorithms: Algorithm::STRONGEST_FIRST.to_vec(),
        require_mutual_auth: true,
    });
    alice.handle_challenges(&parsed).unwrap();
    let creds = alice.authorize("REGISTER", "sip:localhost", b"", 1);
    let r = exchange(&ua, udp_addr(&a), register(port, 2, Some(&creds[0]))).await;
    assert_eq!(r.status(), Some(200), "{r:?}");
    let infos: Vec<String> = r
        .headers_named(HeaderName::AuthenticationInfo)
        .map(|h| h.value.to_owned())
        .collect();
    let infos: Vec<AuthenticationInfo<'_>> = infos
        .iter()
        .map(|v| AuthenticationInfo::parse(v).unwrap())
        .collect();
    assert_eq!(alice.check_infos(&infos, b"").unwrap().len(), 1);

    // B has no users yet: alice's answer to A's nonce is refused there.
    let creds = alice.authorize("REGISTER", "sip:localhost", b"", 2);
    let r = exchange(&ua, udp_addr(&b), register(port, 3, Some(&creds[0]))).await;
    assert_eq!(r.status(), Some(401), "{r:?}");

    // Added while B runs: within a poll or two B knows alice, and accepts the nonce A issued
    // (a nextnonce from A's Authentication-Info), since both use the same secret.
    Store::open(&data_b)
        .unwrap()
        .add_user("sip:alice@localhost", PASSWORD, None, &[])
        .unwrap();
    let added = Instant::now();
    let mut cseq = 4;
    loop {
        let creds = alice.authorize("REGISTER", "sip:localhost", b"", u64::from(cseq));
        let r = exchange(&ua, udp_addr(&b), register(port, cseq, Some(&creds[0]))).await;
        if r.status() == Some(200) {
            break;
        }
        assert_eq!(r.status(), Some(401), "{r:?}");
        assert!(
            added.elapsed() < USERS_POLL * 3,
            "B did not take up the new user within {:?}",
            USERS_POLL * 3
        );
        cseq += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("new user taken up after {:?}", added.elapsed());
    a.shutdown().await;
    b.shutdown().await;
}

/// A first message from `ua`, whatever it is.
async fn next_message(ua: &UdpSocket) -> Message {
    let ua = ua.try_clone().unwrap();
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = ua.recv_from(&mut buf).expect("no message within 5 s");
        Message::parse(buf[..n].to_vec()).unwrap()
    })
    .await
    .unwrap()
}

fn invite(port: u16, callee: SocketAddr, cseq: u32, branch: &str, auth: Option<&str>) -> String {
    let auth = auth
        .map(|a| format!("Proxy-Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "INVITE sip:bob@{callee} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@localhost>;tag=a\r\n\
         To: <sip:bob@{callee}>\r\n\
         Call-ID: trying-test\r\n\
         CSeq: {cseq} INVITE\r\n\
         Contact: <sip:alice@127.0.0.1:{port}>\r\n\
         {auth}Content-Length: 0\r\n\r\n"
    )
}

/// RFC 3261 §17.2.1: the server transaction's 100 Trying is left out when the core answers
/// the INVITE at once (the 407 challenge), and sent when it forwards the INVITE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenged_invite_gets_no_100_and_a_forwarded_one_does() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    Store::open(&data)
        .unwrap()
        .add_user("sip:alice@localhost", PASSWORD, None, &[])
        .unwrap();
    let s = start(&data, &tmp.path().join("nonce.secret")).await;
    let ua = UdpSocket::bind("127.0.0.1:0").unwrap();
    ua.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = ua.local_addr().unwrap().port();
    let callee = UdpSocket::bind("127.0.0.1:0").unwrap();
    callee
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let callee_addr = callee.local_addr().unwrap();

    let msg = invite(port, callee_addr, 1, "z9hG4bK-try-1", None);
    ua.send_to(msg.as_bytes(), udp_addr(&s)).unwrap();
    let r = next_message(&ua).await;
    assert_eq!(
        r.status(),
        Some(407),
        "the first response is the challenge: {r:?}"
    );
    let values: Vec<String> = r
        .headers_named(HeaderName::ProxyAuthenticate)
        .map(|h| h.value.to_owned())
        .collect();
    let parsed: Vec<Challenge<'_>> = values
        .iter()
        .map(|v| Challenge::parse(v).unwrap())
        .collect();
    let mut alice = Responder::new(ResponderConfig {
        username: "alice".into(),
        password: PASSWORD.into(),
        algorithms: Algorithm::STRONGEST_FIRST.to_vec(),
        require_mutual_auth: true,
    });
    alice.handle_challenges(&parsed).unwrap();
    // §17.1.1.3: the ACK for the 407, so it is not retransmitted into what follows.
    let to = r.header(HeaderName::To).unwrap().value;
    let ack = format!(
        "ACK sip:bob@{callee_addr} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-try-1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@localhost>;tag=a\r\n\
         To: {to}\r\n\
         Call-ID: trying-test\r\n\
         CSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    );
    ua.send_to(ack.as_bytes(), udp_addr(&s)).unwrap();
    let uri = format!("sip:bob@{callee_addr}");
    let creds = alice.authorize("INVITE", &uri, b"", 1);
    let msg = invite(port, callee_addr, 2, "z9hG4bK-try-2", Some(&creds[0]));
    ua.send_to(msg.as_bytes(), udp_addr(&s)).unwrap();
    let r = next_message(&ua).await;
    assert_eq!(
        r.status(),
        Some(100),
        "a forwarded INVITE gets 100 Trying: {r:?}"
    );
    let forwarded = next_message(&callee).await;
    assert_eq!(forwarded.method(), Some(vouch_msg::Method::Invite));
    s.shutdown().await;
}
