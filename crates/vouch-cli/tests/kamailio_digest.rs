//! Digest mutual authentication against Kamailio (`auth` with `add_authinfo_hdr`): the test is
//! a UA on a real UDP socket, REGISTER → 401 → vouch's `Responder` answers → 200 whose
//! Authentication-Info rspauth `check_infos` verifies (the server of the realm is
//! authenticated), while a tampered rspauth is refused and a wrong password gets no 200.
//! Kamailio checks the credentials from a SQLite subscriber table (`auth_db`, MD5) or from a
//! password in its script (`pv_auth_check`, SHA-256).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kamailio;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kamailio::*;
use vouch_auth::digest::{Algorithm, ClientAuthError, Responder, ResponderConfig};
use vouch_msg::headers::auth::{AuthenticationInfo, Challenge, Credentials};
use vouch_msg::{HeaderName, Message};

const REALM: &str = "biloxi.example.com";
const USER: &str = "alice";
const PASSWORD: &str = "wonderland";
const URI: &str = "sip:biloxi.example.com";
const WAIT: Duration = Duration::from_secs(3);

const TEMPLATE: &str = include_str!("kamailio/digest_registrar.cfg");

/// The subscriber table of Kamailio 5.6 (`/usr/share/kamailio/db_sqlite/auth_db-create.sql`,
/// table version 7) with one user.
const SCHEMA: &str = "
CREATE TABLE version (
    id INTEGER PRIMARY KEY NOT NULL,
    table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_table_name_idx UNIQUE (table_name)
);
INSERT INTO version (table_name, table_version) values ('version','1');
CREATE TABLE subscriber (
    id INTEGER PRIMARY KEY NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT '' NOT NULL,
    password VARCHAR(64) DEFAULT '' NOT NULL,
    ha1 VARCHAR(128) DEFAULT '' NOT NULL,
    ha1b VARCHAR(128) DEFAULT '' NOT NULL,
    CONSTRAINT subscriber_account_idx UNIQUE (username, domain)
);
CREATE INDEX subscriber_username_idx ON subscriber (username);
INSERT INTO version (table_name, table_version) values ('subscriber','7');
INSERT INTO subscriber (username, domain, password) VALUES ('alice', 'biloxi.example.com', 'wonderland');
";

/// Where Kamailio finds the password.
enum Backend {
    /// `auth_db` on a SQLite database made with the sqlite3 command (plain-text password,
    /// `calculate_ha1`).
    Sqlite,
    /// `pv_auth_check` with the password in the script: no database.
    Script,
}

fn start_registrar(dir: &Path, backend: &Backend, algorithm: &str) -> Kamailio {
    let (modules, check) = match backend {
        Backend::Sqlite => {
            let db = dir.join("auth.sqlite");
            let out = Command::new("sqlite3")
                .arg(&db)
                .arg(SCHEMA)
                .output()
                .expect("sqlite3 runs");
            assert!(
                out.status.success(),
                "sqlite3: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (
                format!(
                    "loadmodule \"db_sqlite.so\"\nloadmodule \"auth_db.so\"\n\
                     modparam(\"auth_db\", \"db_url\", \"sqlite:///{}\")\n\
                     modparam(\"auth_db\", \"calculate_ha1\", 1)\n\
                     modparam(\"auth_db\", \"password_column\", \"password\")\n",
                    db.display()
                ),
                format!("auth_check(\"{REALM}\", \"subscriber\", \"1\")"),
            )
        }
        Backend::Script => (
            String::new(),
            format!("pv_auth_check(\"{REALM}\", \"{PASSWORD}\", \"0\", \"1\")"),
        ),
    };
    let port = free_udp_port();
    let cfg = render(
        TEMPLATE,
        &[
            ("PORT", port.to_string()),
            ("REALM", REALM.to_string()),
            ("MODULES", modules),
            ("CHECK", check),
            ("ALGORITHM", algorithm.to_string()),
        ],
    );
    Kamailio::start(dir, "registrar", &cfg, port)
}

/// A UA registering alice over one UDP socket.
struct Ua {
    sock: SipSocket,
    call_id: String,
    cseq: u32,
}

impl Ua {
    fn new(tag: &str) -> Ua {
        let sock = SipSocket::bind();
        let call_id = format!("reg-{tag}-{}-{}", std::process::id(), sock.port());
        Ua {
            sock,
            call_id,
            cseq: 0,
        }
    }

    /// Sends a REGISTER (with `authorization` when given) and returns the final response.
    fn register(&mut self, k: &Kamailio, authorization: Option<&str>) -> Message {
        self.cseq += 1;
        let port = self.sock.port();
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let msg = format!(
            "REGISTER {URI} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call}-{cseq};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{USER}@{REALM}>;tag=ua{port}\r\n\
             To: <sip:{USER}@{REALM}>\r\n\
             Call-ID: {call}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{USER}@127.0.0.1:{port}>\r\n\
             Expires: 3600\r\n\
             {auth}\
             Content-Length: 0\r\n\r\n",
            call = self.call_id,
            cseq = self.cseq,
        );
        self.sock.send(msg.as_bytes(), k.addr());
        self.sock
            .recv_final(&self.call_id, WAIT)
            .unwrap_or_else(|| {
                panic!(
                    "no final response to REGISTER CSeq {}; kamailio log:\n{}",
                    self.cseq,
                    k.log_tail(40)
                )
            })
    }
}

fn responder(password: &str) -> Responder {
    Responder::new(ResponderConfig {
        username: USER.into(),
        password: password.into(),
        algorithms: Algorithm::STRONGEST_FIRST.to_vec(),
        require_mutual_auth: true,
    })
}

fn challenges(reply: &Message) -> Vec<String> {
    reply
        .headers_named(HeaderName::WwwAuthenticate)
        .map(|h| h.value.to_string())
        .collect()
}

fn auth_infos(reply: &Message) -> Vec<String> {
    reply
        .headers_named(HeaderName::AuthenticationInfo)
        .map(|h| h.value.to_string())
        .collect()
}

fn cnonce_random() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The whole exchange against one registrar; `algorithm` is what Kamailio challenges with.
fn rspauth_interop(test: &str, backend: &Backend, algorithm: &str) {
    if !kamailio_available(test) {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let k = start_registrar(tmp.path(), backend, algorithm);
    let mut ua = Ua::new(test);

    // 1. Unauthenticated REGISTER: 401 with one qop=auth challenge of the configured algorithm.
    let r401 = ua.register(&k, None);
    assert_eq!(r401.status(), Some(401), "{}", r401.start_line());
    let offered = challenges(&r401);
    assert_eq!(offered.len(), 1, "{offered:?}");
    let challenge = Challenge::parse(&offered[0]).unwrap();
    assert_eq!(challenge.realm.as_deref(), Some(REALM));
    assert!(challenge.offers_qop("auth"), "{}", offered[0]);
    assert_eq!(
        Algorithm::parse(challenge.algorithm.unwrap_or("MD5")).map(|(a, _)| a.token()),
        Some(algorithm),
        "{}",
        offered[0]
    );
    let nonce = challenge.nonce.as_deref().unwrap().to_string();

    // 2. vouch's Responder answers; Kamailio accepts and proves it knows the secret.
    let mut alice = responder(PASSWORD);
    alice
        .handle_challenges(std::slice::from_ref(&challenge))
        .unwrap();
    let creds = alice.authorize("REGISTER", URI, b"", cnonce_random());
    assert_eq!(creds.len(), 1);
    let sent = Credentials::parse(&creds[0]).unwrap();
    let r200 = ua.register(&k, Some(&creds[0]));
    assert_eq!(
        r200.status(),
        Some(200),
        "{}; kamailio log:\n{}",
        r200.start_line(),
        k.log_tail(30)
    );
    let infos = auth_infos(&r200);
    assert_eq!(infos.len(), 1, "one Authentication-Info: {infos:?}");
    let info = AuthenticationInfo::parse(&infos[0]).unwrap();
    assert!(info.rspauth.is_some(), "{}", infos[0]);
    assert_eq!(info.qop, Some("auth"), "{}", infos[0]);
    assert_eq!(
        info.cnonce.as_deref(),
        sent.cnonce.as_deref(),
        "{}",
        infos[0]
    );
    assert_eq!(info.nc, Some(1), "{}", infos[0]);
    // Without one-time nonces Kamailio's nextnonce is the nonce just used.
    assert_eq!(
        info.nextnonce.as_deref(),
        Some(nonce.as_str()),
        "{}",
        infos[0]
    );
    let proofs = alice
        .check_infos(std::slice::from_ref(&info), r200.body_bytes())
        .unwrap_or_else(|e| panic!("Kamailio's rspauth refused: {e}; {}", infos[0]));
    assert_eq!(proofs.len(), 1);
    assert_eq!(proofs[0].realm(), REALM);

    // 3. The next REGISTER reuses the nonce (nc 2) without a new challenge; a changed rspauth
    // on its 200 is refused.
    let creds = alice.authorize("REGISTER", URI, b"", cnonce_random());
    let sent = Credentials::parse(&creds[0]).unwrap();
    assert_eq!(
        (sent.nonce.as_deref(), sent.nc),
        (Some(nonce.as_str()), Some(2))
    );
    let r200 = ua.register(&k, Some(&creds[0]));
    assert_eq!(r200.status(), Some(200), "{}", r200.start_line());
    let infos = auth_infos(&r200);
    assert_eq!(infos.len(), 1, "{infos:?}");
    let genuine = AuthenticationInfo::parse(&infos[0]).unwrap();
    assert_eq!(genuine.nc, Some(2), "{}", infos[0]);
    let rspauth = genuine.rspauth.unwrap();
    let flipped: String = rspauth
        .char_indices()
        .map(|(i, c)| match (i, c) {
            (0, '0') => '1',
            (0, _) => '0',
            (_, c) => c,
        })
        .collect();
    assert_ne!(flipped, rspauth);
    let tampered = AuthenticationInfo {
        rspauth: Some(&flipped),
        ..genuine.clone()
    };
    assert_eq!(
        alice
            .check_infos(&[tampered], r200.body_bytes())
            .unwrap_err(),
        ClientAuthError::BadRspauth(REALM.to_string())
    );

    // 4. A wrong password: Kamailio challenges again and sends no Authentication-Info.
    let r401 = ua.register(&k, None);
    assert_eq!(r401.status(), Some(401), "{}", r401.start_line());
    let fresh_values = challenges(&r401);
    let fresh: Vec<Challenge<'_>> = fresh_values
        .iter()
        .map(|c| Challenge::parse(c).unwrap())
        .collect();
    let mut mallory = responder("not-the-password");
    mallory.handle_challenges(&fresh).unwrap();
    let creds = mallory.authorize("REGISTER", URI, b"", cnonce_random());
    let refused = ua.register(&k, Some(&creds[0]));
    assert_eq!(refused.status(), Some(401), "{}", refused.start_line());
    assert!(auth_infos(&refused).is_empty());

    eprintln!("{test}: {:.2}s", started.elapsed().as_secs_f64());
}

#[test]
fn kamailio_auth_db_sqlite_rspauth_md5_verified_by_responder() {
    let test = "kamailio_auth_db_sqlite_rspauth_md5_verified_by_responder";
    if command_runs("sqlite3", &["-version"]) {
        rspauth_interop(test, &Backend::Sqlite, "MD5");
    } else {
        eprintln!(
            "{test}: sqlite3 not installed: Kamailio checks a password in its script instead"
        );
        rspauth_interop(test, &Backend::Script, "MD5");
    }
}

#[test]
fn kamailio_pv_auth_check_rspauth_sha256_verified_by_responder() {
    rspauth_interop(
        "kamailio_pv_auth_check_rspauth_sha256_verified_by_responder",
        &Backend::Script,
        "SHA-256",
    );
}

/// vouch's own UA (`vouch ua`, not just the Responder) registers at Kamailio and checks the
/// Authentication-Info rspauth Kamailio's `auth` module sends (issue 4: interop of the UA core).
#[test]
fn vouch_ua_checks_kamailio_rspauth_on_register() {
    let test = "vouch_ua_checks_kamailio_rspauth_on_register";
    if !kamailio_available(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let k = start_registrar(dir.path(), &Backend::Script, "SHA-256");
    let run = |password: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_vouch"))
            .args(["ua", "--aor", &format!("sip:{USER}@{REALM}")])
            .args(["--proxy", &format!("udp:{}", k.addr())])
            .args(["--timeout", "10"])
            .env("VOUCH_PASSWORD", password)
            .output()
            .unwrap()
    };
    let out = run(PASSWORD);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}\nkamailio log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        k.log_tail(40)
    );
    assert!(
        text.contains(&format!("registrar's rspauth checked for {REALM}")),
        "{text}"
    );
    let out = run("not-the-password");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("REGISTRATION FAILED 401"));
}
