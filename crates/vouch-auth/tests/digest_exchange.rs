//! Challenger and responder against each other: the full exchange with mutual authentication,
//! two proxies in series, and the attacks of the mutual-auth issue.

use vouch_auth::digest::{
    Algorithm, AuthFailure, Challenger, ChallengerConfig, ClientAuthError, NonceSecret, Responder,
    ResponderConfig, ha1,
};
use vouch_msg::headers::auth::{AuthenticationInfo, Challenge, Credentials};

const URI: &str = "sip:bob@biloxi.example.com";

fn responder(algorithms: Vec<Algorithm>, require_mutual_auth: bool) -> Responder {
    Responder::new(ResponderConfig {
        username: "alice".into(),
        password: "wonderland".into(),
        algorithms,
        require_mutual_auth,
    })
}

fn challenger(realm: &str, secret: u8) -> Challenger {
    Challenger::new(ChallengerConfig::new(realm), NonceSecret::new([secret; 32]))
}

fn store(realm: &'static str) -> impl Fn(&str, Algorithm) -> Option<String> {
    move |user, alg| (user == "alice").then(|| ha1(alg, "alice", realm, "wonderland"))
}

fn parse_all(values: &[String]) -> Vec<Challenge<'_>> {
    values
        .iter()
        .map(|v| Challenge::parse(v).expect("challenge parses"))
        .collect()
}

/// One authenticated request through `proxy`: returns the credentials value sent.
fn answer(client: &mut Responder, proxy: &Challenger, now: i64) -> String {
    let ch = proxy.challenges(now, 7, false);
    client
        .handle_challenges(&parse_all(&ch))
        .expect("acceptable");
    let creds = client.authorize("INVITE", URI, b"", 99);
    assert_eq!(creds.len(), 1);
    creds.into_iter().next().unwrap_or_default()
}

#[test]
fn full_exchange_with_mutual_authentication_and_nextnonce() {
    let mut proxy = challenger("atlanta.example.com", 1);
    let mut ua = responder(Algorithm::STRONGEST_FIRST.to_vec(), true);
    let creds = answer(&mut ua, &proxy, 1000);
    let c = Credentials::parse(&creds).unwrap();
    assert_eq!(
        c.algorithm,
        Some("SHA-512-256"),
        "strongest offered algorithm chosen"
    );
    let auth = proxy
        .verify(1000, &c, "INVITE", URI, b"", store("atlanta.example.com"))
        .expect("authenticated");
    assert_eq!(auth.username(), "alice");
    let info = proxy.authentication_info(&auth, 1001, 5, b"");
    let parsed = AuthenticationInfo::parse(&info).unwrap();
    assert!(parsed.nextnonce.is_some() && parsed.rspauth.is_some());
    let proofs = ua
        .check_infos(std::slice::from_ref(&parsed), b"")
        .expect("rspauth verifies");
    assert_eq!(proofs[0].realm(), "atlanta.example.com");
    // The next request uses nextnonce with nc starting again at 1 and is accepted without a
    // new challenge.
    let creds = ua.authorize("BYE", URI, b"", 100);
    let c = Credentials::parse(&creds[0]).unwrap();
    assert_eq!(c.nonce.as_deref(), parsed.nextnonce.as_deref());
    assert_eq!(c.nc, Some(1));
    assert!(
        proxy
            .verify(1002, &c, "BYE", URI, b"", store("atlanta.example.com"))
            .is_ok()
    );
}

#[test]
fn two_proxies_in_series_each_authenticated_by_cnonce() {
    let mut atlanta = challenger("atlanta.example.com", 1);
    let mut chicago = challenger("chicago.example.com", 2);
    let mut ua = responder(Algorithm::STRONGEST_FIRST.to_vec(), true);
    // First 407 from atlanta, then (after retry) a 407 from chicago: the UA keeps both.
    ua.handle_challenges(&parse_all(&atlanta.challenges(1000, 1, false)))
        .unwrap();
    ua.handle_challenges(&parse_all(&chicago.challenges(1000, 2, false)))
        .unwrap();
    let creds = ua.authorize("INVITE", URI, b"", 3);
    assert_eq!(creds.len(), 2, "one Proxy-Authorization per realm");
    let by_realm = |realm: &str| {
        creds
            .iter()
            .find(|c| c.contains(&format!("realm=\"{realm}\"")))
            .cloned()
            .unwrap_or_default()
    };
    let a_cred = by_realm("atlanta.example.com");
    let c_cred = by_realm("chicago.example.com");
    let a = atlanta
        .verify(
            1000,
            &Credentials::parse(&a_cred).unwrap(),
            "INVITE",
            URI,
            b"",
            store("atlanta.example.com"),
        )
        .unwrap();
    let c = chicago
        .verify(
            1000,
            &Credentials::parse(&c_cred).unwrap(),
            "INVITE",
            URI,
            b"",
            store("chicago.example.com"),
        )
        .unwrap();
    // The 200 passes chicago first (downstream), then atlanta, which preserves chicago's value.
    let infos = [
        chicago.authentication_info(&c, 1001, 8, b""),
        atlanta.authentication_info(&a, 1001, 9, b""),
    ];
    let parsed: Vec<_> = infos
        .iter()
        .map(|i| AuthenticationInfo::parse(i).unwrap())
        .collect();
    let proofs = ua.check_infos(&parsed, b"").unwrap();
    let mut realms: Vec<_> = proofs.iter().map(|p| p.realm().to_string()).collect();
    realms.sort();
    assert_eq!(realms, ["atlanta.example.com", "chicago.example.com"]);
}

#[test]
fn rejects_replayed_nonce_count_and_whole_request_replay() {
    let mut proxy = challenger("atlanta.example.com", 1);
    let mut ua = responder(vec![Algorithm::Sha256], true);
    let creds = answer(&mut ua, &proxy, 1000);
    let c = Credentials::parse(&creds).unwrap();
    assert!(
        proxy
            .verify(1000, &c, "INVITE", URI, b"", store("atlanta.example.com"))
            .is_ok()
    );
    assert_eq!(
        proxy
            .verify(1001, &c, "INVITE", URI, b"", store("atlanta.example.com"))
            .unwrap_err(),
        AuthFailure::ReplayedNonceCount
    );
}

#[test]
fn rejects_nonce_of_another_realm_or_secret() {
    let mut atlanta = challenger("atlanta.example.com", 1);
    let biloxi = challenger("biloxi.example.com", 1);
    let other_secret = challenger("atlanta.example.com", 2);
    for foreign in [&biloxi, &other_secret] {
        let mut ua = responder(vec![Algorithm::Sha256], true);
        let creds = answer(&mut ua, foreign, 1000);
        // Rewrite the realm so only the nonce is foreign.
        let creds = creds.replace(
            "realm=\"biloxi.example.com\"",
            "realm=\"atlanta.example.com\"",
        );
        let c = Credentials::parse(&creds).unwrap();
        assert_eq!(
            atlanta
                .verify(1000, &c, "INVITE", URI, b"", store("atlanta.example.com"))
                .unwrap_err(),
            AuthFailure::BadNonce
        );
    }
}

#[test]
fn wrong_password_unknown_user_and_stale_nonce() {
    let mut proxy = challenger("atlanta.example.com", 1);
    let mut ua = Responder::new(ResponderConfig {
        username: "alice".into(),
        password: "guess".into(),
        algorithms: vec![Algorithm::Sha256],
        require_mutual_auth: true,
    });
    let creds = answer(&mut ua, &proxy, 1000);
    let c = Credentials::parse(&creds).unwrap();
    assert_eq!(
        proxy
            .verify(1000, &c, "INVITE", URI, b"", store("atlanta.example.com"))
            .unwrap_err(),
        AuthFailure::WrongResponse
    );
    assert_eq!(
        proxy
            .verify(1000, &c, "INVITE", URI, b"", |_, _| None)
            .unwrap_err(),
        AuthFailure::WrongResponse
    );
    // The same nonce challenged again without stale=true: the client gives up.
    let again = proxy.challenges(1000, 7, false);
    assert_eq!(
        ua.handle_challenges(&parse_all(&again)),
        Err(ClientAuthError::Refused("atlanta.example.com".into()))
    );

    let mut good = responder(vec![Algorithm::Sha256], true);
    let creds = answer(&mut good, &proxy, 1000);
    let c = Credentials::parse(&creds).unwrap();
    let e = proxy
        .verify(2000, &c, "INVITE", URI, b"", store("atlanta.example.com"))
        .unwrap_err();
    assert!(e.stale());
    // After stale=true the client retries with the same password, no error.
    let stale = proxy.challenges(2000, 8, true);
    good.handle_challenges(&parse_all(&stale)).unwrap();
    let creds = good.authorize("INVITE", URI, b"", 1);
    assert!(
        proxy
            .verify(
                2000,
                &Credentials::parse(&creds[0]).unwrap(),
                "INVITE",
                URI,
                b"",
                store("atlanta.example.com")
            )
            .is_ok()
    );
}

#[test]
fn tampered_or_stripped_rspauth_is_a_failure() {
    let mut proxy = challenger("atlanta.example.com", 1);
    let mut ua = responder(vec![Algorithm::Sha256], true);
    let creds = answer(&mut ua, &proxy, 1000);
    let auth = proxy
        .verify(
            1000,
            &Credentials::parse(&creds).unwrap(),
            "INVITE",
            URI,
            b"",
            store("atlanta.example.com"),
        )
        .unwrap();
    let info = proxy.authentication_info(&auth, 1000, 3, b"");
    let parsed = AuthenticationInfo::parse(&info).unwrap();
    let good = parsed.rspauth.unwrap_or_default();
    let flipped: String = good.chars().rev().collect();
    let mut tampered = parsed.clone();
    tampered.rspauth = Some(&flipped);
    assert_eq!(
        ua.check_infos(&[tampered], b"").unwrap_err(),
        ClientAuthError::BadRspauth("atlanta.example.com".into())
    );

    let creds = ua.authorize("INVITE", URI, b"", 4);
    assert_eq!(creds.len(), 1);
    assert_eq!(
        ua.check_infos(&[], b"").unwrap_err(),
        ClientAuthError::MissingRspauth("atlanta.example.com".into())
    );

    // Without the policy, a missing value is tolerated but a wrong one never is.
    let mut lenient = responder(vec![Algorithm::Sha256], false);
    let _ = answer(&mut lenient, &proxy, 1000);
    assert!(lenient.check_infos(&[], b"").unwrap().is_empty());
}

#[test]
fn algorithm_downgrade_refused_when_md5_forbidden() {
    let mut md5_only = ChallengerConfig::new("atlanta.example.com");
    md5_only.algorithms = vec![Algorithm::Md5];
    let evil = Challenger::new(md5_only, NonceSecret::new([1; 32]));
    let mut ua = responder(vec![Algorithm::Sha512_256, Algorithm::Sha256], true);
    assert!(matches!(
        ua.handle_challenges(&parse_all(&evil.challenges(1000, 1, false))),
        Err(ClientAuthError::NoAcceptableChallenge(_))
    ));

    // A server that does not offer MD5 refuses MD5 credentials.
    let mut strong = ChallengerConfig::new("atlanta.example.com");
    strong.algorithms = vec![Algorithm::Sha256];
    let mut proxy = Challenger::new(strong, NonceSecret::new([1; 32]));
    let mut md5_ua = responder(vec![Algorithm::Md5], true);
    let creds = answer(&mut md5_ua, &evil, 1000);
    let e = proxy
        .verify(
            1000,
            &Credentials::parse(&creds).unwrap(),
            "INVITE",
            URI,
            b"",
            store("atlanta.example.com"),
        )
        .unwrap_err();
    assert_eq!(e, AuthFailure::AlgorithmNotAllowed("MD5".into()));
}

#[test]
fn auth_int_covers_request_and_response_bodies() {
    let mut proxy = challenger("atlanta.example.com", 1);
    let ch = proxy.challenges(1000, 1, false);
    // Offer only auth-int.
    let ch: Vec<String> = ch
        .iter()
        .map(|c| c.replace("qop=\"auth,auth-int\"", "qop=\"auth-int\""))
        .collect();
    let mut ua = responder(vec![Algorithm::Sha256], true);
    ua.handle_challenges(&parse_all(&ch)).unwrap();
    let creds = ua.authorize("MESSAGE", URI, b"hello", 2);
    let c = Credentials::parse(&creds[0]).unwrap();
    assert_eq!(c.qop, Some("auth-int"));
    assert_eq!(
        proxy
            .verify(
                1000,
                &c,
                "MESSAGE",
                URI,
                b"hellO",
                store("atlanta.example.com")
            )
            .unwrap_err(),
        AuthFailure::WrongResponse
    );
    let auth = proxy
        .verify(
            1000,
            &c,
            "MESSAGE",
            URI,
            b"hello",
            store("atlanta.example.com"),
        )
        .unwrap();
    let info = proxy.authentication_info(&auth, 1000, 3, b"reply");
    assert!(
        ua.check_infos(&[AuthenticationInfo::parse(&info).unwrap()], b"reply")
            .is_ok()
    );
}

#[test]
fn digest_uri_must_match_unless_relaxed() {
    let mut proxy = challenger("atlanta.example.com", 1);
    let mut ua = responder(vec![Algorithm::Sha256], true);
    let creds = answer(&mut ua, &proxy, 1000);
    let c = Credentials::parse(&creds).unwrap();
    assert_eq!(
        proxy
            .verify(
                1000,
                &c,
                "INVITE",
                "sip:carol@biloxi.example.com",
                b"",
                store("atlanta.example.com")
            )
            .unwrap_err(),
        AuthFailure::UriMismatch
    );
}
