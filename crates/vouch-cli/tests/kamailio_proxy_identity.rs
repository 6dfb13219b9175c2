//! RFC 4474 Identity between the *servers*: a running `vouch proxy` and Kamailio's
//! auth_identity module, both ways, over real UDP on 127.0.0.1 (kamailio_identity.rs covers the
//! offline `vouch identity sign|verify` tools against the same module).
//!
//! - `vouch_proxy_signs_and_kamailio_verifies`: a UA (a plain socket answering the 407 with
//!   vouch-auth's digest client) calls through `vouch proxy` (digest, identity signing with its
//!   generated RSA certificate, served by its own HTTP endpoint), whose `[hosts]` next hop is a
//!   Kamailio verifier (`kamailio/identity_verifier_tm.cfg`) trusting vouch's development CA;
//!   Kamailio fetches the certificate from vouch, verifies and relays to the UAS socket; the
//!   200 comes back to the UA with vouch's rspauth. Then copies sent to Kamailio directly: body
//!   or From changed → 438, the genuine one again → 403 replay (only requests that passed every
//!   check are remembered), unsigned → 428; none reaches the UAS.
//! - `kamailio_signs_and_vouch_proxy_verifies`: Kamailio (`kamailio/identity_signer.cfg`) signs
//!   the UA's INVITE and forwards it to a `vouch proxy` with `[verification]` trusting
//!   Kamailio's certificate, which fetches it from the test's HTTP server, verifies (and logs
//!   so) and delivers to bob, registered with digest from the UAS socket; the 200 comes back
//!   through both. Then copies sent to vouch directly: body or From changed → 438, the genuine
//!   one again → 403 (replay), unsigned → 428, each with a Warning; none reaches bob.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kamailio;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kamailio::{
    HttpFiles, Kamailio, SipSocket, domain_cert, free_udp_port, kamailio_available, render,
    tamper_body, tamper_header,
};
use support::{Vouch, add_user, tail_lines};
use vouch_auth::digest::{Algorithm, Responder, ResponderConfig};
use vouch_msg::headers::auth::{AuthenticationInfo, Challenge};
use vouch_msg::{HeaderName, Message};

const VERIFIER_TM: &str = include_str!("kamailio/identity_verifier_tm.cfg");
const SIGNER: &str = include_str!("kamailio/identity_signer.cfg");
/// Longest wait for one hop's answer or forward (the first request also waits for a
/// certificate fetch over loopback HTTP).
const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing was forwarded" is watched for.
const QUIET: Duration = Duration::from_millis(500);

const ALICE_PASSWORD: &str = "alice-Secret-1";
const BOB_PASSWORD: &str = "bob-Secret-2";

const SDP: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

/// An INVITE for `ruri` from alice at `from_domain`, sent from `ua_port` with Via branch
/// `z9hG4bK-<branch>`, `extra` header lines, and an SDP body.
fn invite(
    ruri: &str,
    from_domain: &str,
    call_id: &str,
    cseq: u32,
    branch: &str,
    ua_port: u16,
    extra: &str,
) -> Vec<u8> {
    format!(
        "INVITE {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{ua_port};branch=z9hG4bK-{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: Alice <sip:alice@{from_domain}>;tag=a-{call_id}\r\n\
         To: Bob <{ruri}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} INVITE\r\n\
         Contact: <sip:alice@127.0.0.1:{ua_port}>\r\n\
         {extra}\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
    .into_bytes()
}

/// `received` (a request as a downstream hop got it) as the UA would send it itself: the
/// Request-URI `ruri` (a proxy may have retargeted it; it is not signed), every Via replaced
/// by one fresh Via of the UA (`branch`), Record-Route and Proxy-Authorization left out; every
/// other field (all the signed ones) and the body byte for byte.
fn as_from_ua(received: &[u8], ruri: &str, ua_port: u16, branch: &str) -> Vec<u8> {
    let msg = Message::parse(received.to_vec()).unwrap();
    let mut out = format!(
        "{} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{ua_port};branch=z9hG4bK-{branch};rport\r\n",
        msg.method().unwrap().as_str()
    )
    .into_bytes();
    for h in msg.headers() {
        if !matches!(
            h.name,
            HeaderName::Via | HeaderName::RecordRoute | HeaderName::ProxyAuthorization
        ) {
            out.extend_from_slice(h.raw);
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(msg.body_bytes());
    out
}

/// The next final response on `sock` to the request sent with Via branch `branch`, or None
/// after `WAIT`.
fn final_for(sock: &SipSocket, branch: &str) -> Option<Message> {
    sock.recv_matching(WAIT, |m| {
        !m.is_request() && m.status().unwrap_or(0) >= 200 && m.top_via_branch() == Some(branch)
    })
}

/// Sends `request` from `sock` to `to` and returns the final response to it (matched by Via
/// branch), or None after `WAIT`.
fn final_to(sock: &SipSocket, to: SocketAddr, request: &[u8]) -> Option<Message> {
    let sent = Message::parse(request.to_vec()).unwrap();
    sock.send(request, to);
    final_for(sock, sent.top_via_branch().unwrap())
}

/// A request on `sock` within `QUIET` other than (a retransmission of) the one the UA sent
/// with Via branch `z9hG4bK-<genuine>` (the bottom Via, the UA's own).
fn other_request(sock: &SipSocket, genuine: &str) -> Option<Message> {
    let mark = format!("branch=z9hG4bK-{genuine};");
    sock.recv_matching(QUIET, |m| {
        m.is_request()
            && !m
                .headers_named(HeaderName::Via)
                .last()
                .is_some_and(|v| v.value.contains(&mark))
    })
}

/// The ACK for a non-2xx final `response` to `request` (same branch: it ends the server
/// transaction, so the response is not retransmitted).
fn ack(request: &[u8], response: &Message) -> Vec<u8> {
    let req = Message::parse(request.to_vec()).unwrap();
    format!(
        "ACK {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
        req.request_uri_str().unwrap(),
        req.header(HeaderName::Via).unwrap().value,
        req.header(HeaderName::From).unwrap().value,
        response.header(HeaderName::To).unwrap().value,
        req.call_id(),
        req.cseq().seq,
    )
    .into_bytes()
}

/// The UAS's answer to `request`: its Vias, From, Call-ID and CSeq, To with a tag, Contact.
fn answer(request: &Message, status: &str, uas_port: u16) -> Vec<u8> {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for via in request.headers_named(HeaderName::Via) {
        out.push_str(&format!("Via: {}\r\n", via.value));
    }
    for name in [HeaderName::From, HeaderName::CallId, HeaderName::CSeq] {
        let h = request.header(name).unwrap();
        out.push_str(&format!("{}: {}\r\n", h.raw_name, h.value));
    }
    out.push_str(&format!(
        "To: {};tag=uas-{uas_port}\r\nContact: <sip:bob@127.0.0.1:{uas_port}>\r\nContent-Length: 0\r\n\r\n",
        request.header(HeaderName::To).unwrap().value
    ));
    out.into_bytes()
}

/// Digest client for `user` accepting every algorithm vouch offers, requiring rspauth.
fn responder(user: &str, password: &str) -> Responder {
    Responder::new(ResponderConfig {
        username: user.into(),
        password: password.into(),
        algorithms: vec![Algorithm::Sha512_256, Algorithm::Sha256, Algorithm::Md5],
        require_mutual_auth: true,
    })
}

/// Takes the challenges of a 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`).
fn take_challenges(client: &mut Responder, response: &Message, header: HeaderName) {
    let values: Vec<String> = response
        .headers_named(header)
        .map(|h| h.value.to_owned())
        .collect();
    let challenges: Vec<Challenge<'_>> = values
        .iter()
        .map(|v| Challenge::parse(v).unwrap())
        .collect();
    assert!(!challenges.is_empty(), "no challenge in {response:?}");
    client.handle_challenges(&challenges).unwrap();
}

/// The Identity-Info URL from vouch's ready line.
fn cert_url(vouch: &Vouch) -> String {
    let ready = vouch
        .stdout
        .iter()
        .find(|l| l.contains("vouch proxy ready"))
        .unwrap();
    let url = ready
        .split("certificate at ")
        .nth(1)
        .unwrap_or_else(|| panic!("no certificate URL in {ready:?}"));
    url.trim_end_matches(')').to_string()
}

/// The request with `call_id` the UAS receives; the panic says what the UA got instead.
fn delivered(
    uas: &SipSocket,
    ua: &SipSocket,
    call_id: &str,
    what: &str,
    logs: impl FnOnce() -> String,
) -> Message {
    uas.recv_matching(WAIT, |m| m.is_request() && m.call_id() == call_id)
        .unwrap_or_else(|| {
            let answer = ua
                .recv_final(call_id, Duration::from_millis(100))
                .map(|r| r.start_line().to_string());
            panic!(
                "{what} did not reach the UAS (UA got {answer:?}); {}",
                logs()
            )
        })
}

/// The Via values of `m`, topmost first.
fn vias(m: &Message) -> Vec<String> {
    m.headers_named(HeaderName::Via)
        .map(|h| h.value.to_string())
        .collect()
}

fn value(msg: &Message, name: HeaderName) -> Option<&str> {
    msg.header(name).map(|h| h.value)
}

/// Waits (up to `WAIT`) for `needle` in vouch's log.
fn wait_for_log(vouch: &Vouch, needle: &str) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if vouch.log_text().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn vouch_proxy_signs_and_kamailio_verifies() {
    let test = "vouch_proxy_signs_and_kamailio_verifies";
    if !kamailio_available(test) {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ua = SipSocket::bind();
    let uas = SipSocket::bind();
    let k_port = free_udp_port();

    // vouch: digest on (all algorithms, strict digest-uri, auth-int offered) and signing on
    // (rsa-sha1, the generated RSA identity certificate issued by its development CA, served
    // at http://127.0.0.1:<port>/identity.cer); biloxi.example is reached through Kamailio.
    add_user(&dir.join("data"), "alice", ALICE_PASSWORD);
    let vouch = Vouch::start(
        dir,
        &format!("hosts = {{ \"biloxi.example\" = \"127.0.0.1:{k_port}\" }}\n"),
    );
    let url = cert_url(&vouch);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // Kamailio trusts vouch's development CA (ca.pem, made at vouch's first start): the
    // identity certificate vouch serves is issued by it and names "localhost" (subjectAltName
    // DNS and CN), the From host. auth_identity accepts only rsa-sha1 (vouch's default) and
    // puts no restriction on the Identity-Info URL beyond fetching it with libcurl.
    let ca = vouch.data_dir().join("ca.pem");
    let cfg = render(
        VERIFIER_TM,
        &[
            ("PORT", k_port.to_string()),
            ("CAINFO", ca.display().to_string()),
            ("NEXT_HOP", uas.port().to_string()),
        ],
    );
    let k = Kamailio::start(dir, "verifier", &cfg, k_port);
    let logs = |k: &Kamailio| {
        format!(
            "kamailio log (tail):\n{}\nvouch log (tail):\n{}",
            k.log_tail(30),
            tail_lines(&vouch.log_text(), 30)
        )
    };

    // 1. The UA's INVITE is challenged (407) by vouch.
    let ruri = "sip:bob@biloxi.example";
    let call_id = format!("vouch-signs-{}", ua.port());
    let first = invite(ruri, "localhost", &call_id, 1, "c1", ua.port(), "");
    let r407 = final_to(&ua, vouch.udp_addr(), &first)
        .unwrap_or_else(|| panic!("vouch did not answer the INVITE; {}", logs(&k)));
    assert_eq!(r407.status(), Some(407), "{r407:?}");
    ua.send(&ack(&first, &r407), vouch.udp_addr());

    // 2. Answered with digest, vouch signs and sends it to Kamailio, which fetches vouch's
    //    certificate, verifies and relays it to the UAS.
    let mut alice = responder("alice", ALICE_PASSWORD);
    take_challenges(&mut alice, &r407, HeaderName::ProxyAuthenticate);
    let creds = alice.authorize("INVITE", ruri, SDP.as_bytes(), 0x5eed);
    let extra: String = creds
        .iter()
        .map(|c| format!("Proxy-Authorization: {c}\r\n"))
        .collect();
    let second = invite(ruri, "localhost", &call_id, 2, "c2", ua.port(), &extra);
    ua.send(&second, vouch.udp_addr());
    let delivered = delivered(&uas, &ua, &call_id, "the signed INVITE", || logs(&k));
    // The UAS answers at once; the 200 goes back through Kamailio and vouch.
    uas.send(&answer(&delivered, "200 OK", uas.port()), k.addr());

    // It crossed both: Kamailio's Via on top, vouch's below it, the UA's at the bottom.
    let vias = vias(&delivered);
    assert_eq!(vias.len(), 3, "{vias:?}");
    assert!(vias[0].contains(&format!("127.0.0.1:{k_port}")), "{vias:?}");
    assert!(
        vias[1].contains(&format!("127.0.0.1:{}", vouch.sip_port)),
        "{vias:?}"
    );
    // vouch's Identity, Identity-Info (its own endpoint, rsa-sha1) and Date, body unchanged.
    assert!(value(&delivered, HeaderName::Date).is_some(), "no Date");
    let identity = value(&delivered, HeaderName::Identity).expect("no Identity");
    assert!(
        identity.starts_with('"') && identity.len() > 300,
        "{identity}"
    );
    assert_eq!(
        value(&delivered, HeaderName::IdentityInfo),
        Some(format!("<{url}>;alg=rsa-sha1").as_str())
    );
    assert_eq!(delivered.body_bytes(), SDP.as_bytes());

    // 3. The UA gets the 200 with vouch's rspauth (mutual digest across Kamailio).
    let ok = final_for(&ua, "z9hG4bK-c2")
        .unwrap_or_else(|| panic!("no final response to the UA; {}", logs(&k)));
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    let infos: Vec<AuthenticationInfo<'_>> = ok
        .headers_named(HeaderName::ProxyAuthenticationInfo)
        .map(|h| AuthenticationInfo::parse(h.value).unwrap())
        .collect();
    let proofs = alice.check_infos(&infos, ok.body_bytes()).unwrap();
    assert_eq!(proofs.len(), 1, "vouch's rspauth: {ok:?}");

    // 4. The same Kamailio refuses what does not verify, so the forward above was a
    //    verification and not a pass-through. Copies of the delivered INVITE are sent to
    //    Kamailio directly, as the UA would send them.
    let refused = |msg: &[u8]| -> (u16, String) {
        let r = final_to(&ua, k.addr(), msg)
            .unwrap_or_else(|| panic!("kamailio did not answer; {}", logs(&k)));
        (
            r.status().unwrap(),
            r.reason_phrase().unwrap_or_default().to_string(),
        )
    };
    let body_changed = as_from_ua(
        &tamper_body(delivered.as_bytes(), "PCMU", "PCMA"),
        ruri,
        ua.port(),
        "t-body",
    );
    assert_eq!(refused(&body_changed).0, 438, "body changed after signing");
    // Only the user part of From changes: auth_identity skips its certificate name check for
    // a cached certificate (docs/PEERS-NOTES.md), so another host would test nothing more.
    let from_changed = as_from_ua(
        &tamper_header(delivered.as_bytes(), "From", "sip:alice@", "sip:malory@"),
        ruri,
        ua.port(),
        "t-from",
    );
    assert_eq!(refused(&from_changed).0, 438, "From changed after signing");
    // The genuine request again: a replay. auth_identity records a request only after every
    // other check (date, certificate, signature) passed, so this 403 also proves that vouch's
    // INVITE passed them all.
    let (code, reason) = refused(&as_from_ua(
        delivered.as_bytes(),
        ruri,
        ua.port(),
        "t-replay",
    ));
    assert_eq!(code, 403, "replay: {reason}");
    assert!(reason.contains("replayed"), "{reason}");
    let unsigned_id = format!("unsigned-{}", ua.port());
    let unsigned = invite(ruri, "localhost", &unsigned_id, 1, "u1", ua.port(), "");
    assert_eq!(refused(&unsigned).0, 428, "unsigned");
    // None of them reached the UAS (a late retransmission of the genuine INVITE may).
    let leaked = other_request(&uas, "c2");
    assert!(
        leaked.is_none(),
        "kamailio forwarded a refused request: {leaked:?}"
    );
    eprintln!("{test}: {:.2}s", started.elapsed().as_secs_f64());
}

#[test]
fn kamailio_signs_and_vouch_proxy_verifies() {
    let test = "kamailio_signs_and_vouch_proxy_verifies";
    if !kamailio_available(test) {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ua = SipSocket::bind();
    let uas = SipSocket::bind();

    // Kamailio's domain: an RSA key and self-signed certificate for atlanta.example.com,
    // served over HTTP by the test (auth_identity signs with rsa-sha1 only).
    let atlanta = domain_cert(dir, "atlanta.example.com");
    let http = HttpFiles::serve(vec![(
        "/atlanta.der".into(),
        "application/pkix-cert",
        atlanta.cert_der.clone(),
    )]);
    let url = http.url("/atlanta.der");

    // vouch for localhost: digest on, verification of inbound requests on, trusting (pinning)
    // Kamailio's certificate.
    add_user(&dir.join("data"), "bob", BOB_PASSWORD);
    let vouch = Vouch::start(
        dir,
        &format!(
            "[verification]\nenabled = true\ntrust = [\"{}\"]\n",
            atlanta.cert_pem.display()
        ),
    );
    let k_port = free_udp_port();
    let cfg = render(
        SIGNER,
        &[
            ("PORT", k_port.to_string()),
            ("KEY", atlanta.key_pem.display().to_string()),
            ("CERT", atlanta.cert_pem.display().to_string()),
            ("CERT_URL", url.clone()),
            ("NEXT_HOP", vouch.sip_port.to_string()),
        ],
    );
    let k = Kamailio::start(dir, "signer", &cfg, k_port);
    let logs = |k: &Kamailio| {
        format!(
            "kamailio log (tail):\n{}\nvouch log (tail):\n{}",
            k.log_tail(30),
            tail_lines(&vouch.log_text(), 30)
        )
    };

    // 1. bob registers at vouch from the UAS socket, with digest (401, then 200).
    let mut bob = responder("bob", BOB_PASSWORD);
    let register = |cseq: u32, extra: &str| -> Vec<u8> {
        format!(
            "REGISTER sip:localhost SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK-reg-{cseq};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:bob@localhost>;tag=reg-{p}\r\n\
             To: <sip:bob@localhost>\r\n\
             Call-ID: reg-{p}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:bob@127.0.0.1:{p}>\r\n\
             Expires: 600\r\n\
             {extra}Content-Length: 0\r\n\r\n",
            p = uas.port()
        )
        .into_bytes()
    };
    let r401 = final_to(&uas, vouch.udp_addr(), &register(1, ""))
        .unwrap_or_else(|| panic!("vouch did not answer REGISTER; {}", logs(&k)));
    assert_eq!(r401.status(), Some(401), "{r401:?}");
    take_challenges(&mut bob, &r401, HeaderName::WwwAuthenticate);
    let creds = bob.authorize("REGISTER", "sip:localhost", b"", 0xb0b);
    let extra: String = creds
        .iter()
        .map(|c| format!("Authorization: {c}\r\n"))
        .collect();
    let r200 = final_to(&uas, vouch.udp_addr(), &register(2, &extra))
        .unwrap_or_else(|| panic!("vouch did not answer REGISTER; {}", logs(&k)));
    assert_eq!(r200.status(), Some(200), "{r200:?}");

    // 2. alice@atlanta.example.com calls bob through Kamailio, which adds Date, signs and
    //    forwards to vouch; vouch fetches Kamailio's certificate, verifies and delivers.
    let ruri = "sip:bob@localhost";
    let call_id = format!("kamailio-signs-{}", ua.port());
    let request = invite(
        ruri,
        "atlanta.example.com",
        &call_id,
        1,
        "k1",
        ua.port(),
        "",
    );
    ua.send(&request, k.addr());
    let delivered = delivered(&uas, &ua, &call_id, "the INVITE signed by kamailio", || {
        logs(&k)
    });
    // bob answers; the 200 goes back through vouch and Kamailio.
    uas.send(&answer(&delivered, "200 OK", uas.port()), vouch.udp_addr());

    // It crossed both (vouch's Via on top, then Kamailio's, then the UA's) with Kamailio's
    // Identity intact: rsa-sha1, Identity-Info the test's URL, the Date Kamailio added.
    let vias = vias(&delivered);
    assert_eq!(vias.len(), 3, "{vias:?}");
    assert!(
        vias[0].contains(&format!("127.0.0.1:{}", vouch.sip_port)),
        "{vias:?}"
    );
    assert!(vias[1].contains(&format!("127.0.0.1:{k_port}")), "{vias:?}");
    assert!(value(&delivered, HeaderName::Date).is_some(), "no Date");
    let identity = value(&delivered, HeaderName::Identity).expect("no Identity");
    assert!(
        identity.starts_with('"') && identity.len() > 300,
        "{identity}"
    );
    assert_eq!(
        value(&delivered, HeaderName::IdentityInfo),
        Some(format!("<{url}>;alg=rsa-sha1").as_str())
    );
    assert_eq!(delivered.body_bytes(), SDP.as_bytes());
    assert_eq!(
        http.hits("/atlanta.der"),
        1,
        "vouch fetched Identity-Info once"
    );
    assert!(
        wait_for_log(
            &vouch,
            "Identity verified for sip:alice@atlanta.example.com (signed by atlanta.example.com)"
        ),
        "vouch did not log the verification; {}",
        logs(&k)
    );
    let ok = final_for(&ua, "z9hG4bK-k1")
        .unwrap_or_else(|| panic!("no final response to the UA; {}", logs(&k)));
    assert_eq!(ok.status(), Some(200), "{ok:?}");

    // 3. vouch refuses what does not verify, with a Warning saying why: copies of what Kamailio
    //    signed (the delivered INVITE as the UA would send it) sent to vouch directly.
    let refused = |msg: &[u8]| -> (u16, String) {
        let r = final_to(&ua, vouch.udp_addr(), msg)
            .unwrap_or_else(|| panic!("vouch did not answer; {}", logs(&k)));
        ua.send(&ack(msg, &r), vouch.udp_addr());
        let warning = value(&r, HeaderName::Warning)
            .unwrap_or_default()
            .to_string();
        assert!(
            warning.starts_with("399 "),
            "{} without a Warning: {r:?}",
            r.start_line()
        );
        (r.status().unwrap(), warning)
    };
    let body_changed = as_from_ua(
        &tamper_body(delivered.as_bytes(), "PCMU", "PCMA"),
        ruri,
        ua.port(),
        "t-body",
    );
    let (code, warning) = refused(&body_changed);
    assert_eq!(code, 438, "body changed after signing: {warning}");
    let from_changed = as_from_ua(
        &tamper_header(delivered.as_bytes(), "From", "sip:alice@", "sip:malory@"),
        ruri,
        ua.port(),
        "t-from",
    );
    let (code, warning) = refused(&from_changed);
    assert_eq!(code, 438, "From changed after signing: {warning}");
    // The genuine request again: vouch verified and remembered it, so this is a replay.
    let (code, warning) = refused(&as_from_ua(
        delivered.as_bytes(),
        ruri,
        ua.port(),
        "t-replay",
    ));
    assert_eq!(code, 403, "replay: {warning}");
    let unsigned_id = format!("unsigned-{}", ua.port());
    let unsigned = invite(
        ruri,
        "atlanta.example.com",
        &unsigned_id,
        1,
        "u1",
        ua.port(),
        "",
    );
    let (code, warning) = refused(&unsigned);
    assert_eq!(code, 428, "unsigned: {warning}");
    assert!(
        wait_for_log(&vouch, "Identity refused with 438"),
        "vouch did not log the refusal; {}",
        logs(&k)
    );
    // None of them reached bob (a late retransmission of the genuine INVITE may).
    let leaked = other_request(&uas, "k1");
    assert!(
        leaked.is_none(),
        "vouch forwarded a refused request: {leaked:?}"
    );
    eprintln!("{test}: {:.2}s", started.elapsed().as_secs_f64());
}
