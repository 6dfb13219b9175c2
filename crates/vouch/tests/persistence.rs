//! Write-behind of registrar bindings (`registrar.persist_interval_ms`, like Kamailio's usrloc
//! `db_mode = 2`): a change waits up to the interval before it reaches the store, the changes
//! of one AoR within the interval are written as its newest set, the writer writes on its own
//! once the interval has passed, and a clean shutdown writes whatever is pending, so
//! registrations survive a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use vouch::config::{Config, ListenAddr};
use vouch::store::{Binding, Store};
use vouch::{Server, server::wall_unix};

async fn start(data: &Path, persist_interval_ms: u64) -> Server {
    let mut config = Config {
        data_dir: data.to_path_buf(),
        ..Config::default()
    };
    config.listen = vec!["udp:127.0.0.1:0".parse::<ListenAddr>().unwrap()];
    config.registrar.persist_interval_ms = persist_interval_ms;
    // Persistence is the subject; digest authentication has its own tests.
    config.auth.enabled = false;
    Server::start(&config, None).await.unwrap()
}

fn udp_addr(server: &Server) -> SocketAddr {
    server.local_addrs()[0].1
}

/// A REGISTER for `user` with Call-ID `reg-USER`, CSeq `cseq` and `contacts` (values of one
/// Contact header field, e.g. `<sip:a@127.0.0.1:5070>;expires=0`).
fn register(user: &str, port: u16, cseq: u32, contacts: &str) -> String {
    format!(
        "REGISTER sip:localhost SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-reg-{user}-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@localhost>;tag=r-{user}\r\n\
         To: <sip:{user}@localhost>\r\n\
         Call-ID: reg-{user}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: {contacts}\r\n\
         Expires: 600\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Sends `request` from `ua` to `to` and returns the response's status line.
async fn exchange(ua: &UdpSocket, to: SocketAddr, request: String) -> String {
    let ua = ua.try_clone().unwrap();
    tokio::task::spawn_blocking(move || {
        ua.send_to(request.as_bytes(), to).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = ua.recv_from(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        text.lines().next().unwrap_or_default().to_owned()
    })
    .await
    .unwrap()
}

fn ua() -> (UdpSocket, u16) {
    let ua = UdpSocket::bind("127.0.0.1:0").unwrap();
    ua.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = ua.local_addr().unwrap().port();
    (ua, port)
}

/// The bindings of `aor` in the store, read over a connection of our own (the server's writer
/// holds its own; WAL lets both work).
fn stored(data: &Path, aor: &str) -> Vec<Binding> {
    let mut store = Store::open(data).unwrap();
    store
        .load_bindings(wall_unix())
        .unwrap()
        .into_iter()
        .filter(|b| b.aor == aor)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_wait_for_the_interval_coalesce_per_aor_and_are_written_on_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Far longer than the test: only the shutdown can write.
    let server = start(&data, 60_000).await;
    let to = udp_addr(&server);
    let (ua, port) = ua();
    let a = format!("<sip:grace@127.0.0.1:{port}>");
    let b = format!("<sip:grace@127.0.0.1:{}>", port + 1);
    let first = exchange(&ua, to, register("grace", port, 1, &a)).await;
    assert_eq!(first, "SIP/2.0 200 OK");
    // The second REGISTER removes the first contact and adds another (RFC 3261 §10.3 step 7).
    let second = register("grace", port, 2, &format!("{a};expires=0, {b}"));
    assert_eq!(exchange(&ua, to, second).await, "SIP/2.0 200 OK");

    assert!(
        stored(&data, "sip:grace@localhost").is_empty(),
        "written before the persist interval had passed"
    );

    server.shutdown().await;
    let after = stored(&data, "sip:grace@localhost");
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(
        after[0].contact,
        format!("sip:grace@127.0.0.1:{}", port + 1)
    );
    assert_eq!(after[0].cseq, 2);

    let server = start(&data, 60_000).await;
    assert_eq!(server.restored_bindings(), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_written_once_the_interval_has_passed() {
    for interval_ms in [0, 200] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let server = start(&data, interval_ms).await;
        let (ua, port) = ua();
        let contact = format!("<sip:heidi@127.0.0.1:{port}>");
        let status = exchange(&ua, udp_addr(&server), register("heidi", port, 1, &contact)).await;
        assert_eq!(status, "SIP/2.0 200 OK");
        // Written while the server runs, without a shutdown to force it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if stored(&data, "sip:heidi@localhost").len() == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "binding not written within 10 s with persist_interval_ms = {interval_ms}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.shutdown().await;
    }
}
