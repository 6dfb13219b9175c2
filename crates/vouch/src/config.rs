//! The configuration of `vouch proxy`: a TOML file (see `examples/vouch.toml` at the repository
//! root), every field optional. With no file at all the defaults make a development server for
//! the domain `localhost` on 127.0.0.1 (UDP and TCP 5060, TLS 5061, RFC 3261 §18 default
//! ports) with its data in `./vouch-data`.
//!
//! Relative paths in a file are taken relative to the directory of that file, so a
//! configuration means the same thing whatever directory the server is started from.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::engine::TransportKind;

/// A configuration problem, naming the file and the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema (the message names the key).
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and key.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("invalid configuration: {field}: {problem}")]
    Invalid {
        /// The field, as written in the file (`registrar.min_expires`).
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// One listening socket: `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, `tls:0.0.0.0:5061`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    /// The transport.
    pub transport: TransportKind,
    /// The local address; port 0 picks a free port.
    pub addr: SocketAddr,
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (t, a) = s.split_once(':').ok_or_else(|| {
            format!("{s:?} is not transport:address:port (e.g. \"udp:127.0.0.1:5060\")")
        })?;
        let transport = match t.to_ascii_lowercase().as_str() {
            "udp" => TransportKind::Udp,
            "tcp" => TransportKind::Tcp,
            "tls" => TransportKind::Tls,
            other => {
                return Err(format!(
                    "unknown transport {other:?} in {s:?} (udp, tcp or tls)"
                ));
            }
        };
        let addr = a.parse().map_err(|_| {
            format!("{a:?} in {s:?} is not an IP address and port (IPv6 in brackets: [::1]:5060)")
        })?;
        Ok(ListenAddr { transport, addr })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", transport_name(self.transport), self.addr)
    }
}

/// `udp`, `tcp` or `tls`.
pub fn transport_name(t: TransportKind) -> &'static str {
    match t {
        TransportKind::Udp => "udp",
        TransportKind::Tcp => "tcp",
        TransportKind::Tls => "tls",
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database and the generated development certificates live.
    pub data_dir: PathBuf,
    /// The domains this server is responsible for (registrar and proxy for their AoRs).
    pub domains: Vec<String>,
    /// Listening sockets.
    pub listen: Vec<ListenAddr>,
    /// Host (name or address) to put in Via and Record-Route instead of the listening address.
    pub advertised_host: Option<String>,
    /// `[hosts]`: next hops for other domains, `"biloxi.example" = "127.0.0.1:5070"`, used
    /// before DNS (a host name listed here is never looked up).
    pub hosts: std::collections::BTreeMap<String, SocketAddr>,
    /// `[dns]`: RFC 3263 server location for other host names.
    pub dns: DnsConfig,
    /// TLS material.
    pub tls: TlsConfig,
    /// Registrar expiry bounds.
    pub registrar: RegistrarConfig,
    /// Parser limits.
    pub limits: LimitsConfig,
    /// Connection handling.
    pub transport: TransportConfig,
    /// RFC 3261 timers.
    pub timers: TimersConfig,
    /// Digest authentication.
    pub auth: AuthConfig,
    /// RFC 4474 identity signing and the certificate's HTTP endpoint.
    pub identity: IdentityConfig,
    /// RFC 4474 verification of inbound requests.
    pub verification: VerificationConfig,
    /// The Prometheus metrics endpoint.
    pub metrics: MetricsConfig,
}

/// `[tls]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain of the domain (leaf first). Without it (and `key`), a development
    /// CA and a domain certificate are generated in the data directory.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// PEM trust anchors: servers vouch connects to must chain to one, and client certificates
    /// are requested (optionally) and verified against them. Defaults to the development CA
    /// when the development certificates are used, to none otherwise (then outgoing TLS
    /// fails and no client certificate is requested).
    pub ca: Vec<PathBuf>,
    /// PEM trust anchors for users' TLS client certificates (a phone's certificate naming its
    /// AoR as a `sip:user@domain` subjectAltName URI). A request on a connection whose
    /// certificate chains to one of these, is valid for client authentication and names the
    /// AoR the request speaks for (From; To for REGISTER), in one of `domains`, is authenticated
    /// without a digest challenge and signed like a digest-authenticated one. Keep these apart
    /// from `ca`: a peer domain's CA must not speak for this domain's users. Default: none
    /// (users authenticate with digest).
    pub user_ca: Vec<PathBuf>,
}

/// `[registrar]`: RFC 3261 §10.3 steps 7–8 (423 Interval Too Brief below the minimum).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarConfig {
    /// Shortest registration accepted, seconds.
    pub min_expires: u32,
    /// Longest registration granted, seconds (longer requests are shortened).
    pub max_expires: u32,
    /// Expiry when the REGISTER asks for none, seconds.
    pub default_expires: u32,
    /// How long binding changes may wait before they are written to the store, milliseconds
    /// (write-behind, like Kamailio's usrloc `db_mode = 2`): changes to one AoR within the
    /// interval become one row set, and all of them one transaction. A clean stop (SIGTERM,
    /// SIGINT) writes what is pending; a crash or `kill -9` loses the changes of the last
    /// interval, and the UAs concerned are unreachable until they refresh their registration.
    /// 0 writes every change as soon as the writer is free.
    pub persist_interval_ms: u64,
}

/// Longest `registrar.persist_interval_ms` accepted: a minute of registrations is already a
/// lot to lose in a crash.
pub const MAX_PERSIST_INTERVAL_MS: u64 = 60_000;

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 86_400,
            default_expires: 3600,
            persist_interval_ms: 1000,
        }
    }
}

impl RegistrarConfig {
    /// [`RegistrarConfig::persist_interval_ms`] as a duration.
    pub fn persist_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.persist_interval_ms)
    }
}

/// `[limits]`: what the parser accepts (vouch-msg `Limits`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest message in bytes; a larger request is answered 513 (RFC 3261 §21.5.14).
    pub max_message_size: usize,
    /// Most header fields in one message.
    pub max_headers: usize,
    /// Longest header field or start line, bytes.
    pub max_line_length: usize,
    /// Most Via values in one message.
    pub max_vias: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let d = vouch_msg::Limits::DEFAULT;
        LimitsConfig {
            max_message_size: d.max_message_size,
            max_headers: d.max_headers,
            max_line_length: d.max_line_length,
            max_vias: d.max_vias,
        }
    }
}

impl From<LimitsConfig> for vouch_msg::Limits {
    fn from(l: LimitsConfig) -> Self {
        vouch_msg::Limits {
            max_message_size: l.max_message_size,
            max_headers: l.max_headers,
            max_line_length: l.max_line_length,
            max_vias: l.max_vias,
        }
    }
}

/// `[transport]`: TCP and TLS connections.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// A connection on which nothing is received for this long is closed, seconds. Clients
    /// that must stay reachable send RFC 5626 CRLF keep-alives more often than this.
    pub idle_timeout_secs: u64,
    /// Time allowed for a TCP connect plus TLS handshake, seconds.
    pub connect_timeout_secs: u64,
    /// Most TCP and TLS connections open at once (inbound and outbound); more are refused.
    pub max_connections: usize,
    /// Messages queued for one connection before further ones are dropped.
    pub send_queue: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            idle_timeout_secs: 600,
            connect_timeout_secs: 10,
            max_connections: 4096,
            send_queue: crate::stream::SEND_QUEUE,
        }
    }
}

/// `[dns]`: RFC 3263 server location (NAPTR, SRV, A/AAAA) for next hops named by a host
/// name that is neither one of ours nor in `[hosts]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Resolve such names at all; off, they get 502 Bad Gateway. Default on.
    pub enabled: bool,
    /// The name servers to ask, `"IP:PORT"`; empty (the default): the system's
    /// (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// How long to wait for one answer, milliseconds. Default 2000.
    pub timeout_ms: u64,
    /// Look up NAPTR records first when the URI names neither transport nor port (RFC 3263
    /// §4.1); off, SRV records of each transport are tried directly. Default on.
    pub naptr: bool,
    /// How many addresses of one target are tried in turn when one fails (RFC 3263 §4.3).
    /// Default 8.
    pub max_targets: usize,
    /// How many lookups may be in progress at once; a request beyond that gets 503.
    /// Default 1024.
    pub max_pending: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            enabled: true,
            nameservers: Vec::new(),
            timeout_ms: 2000,
            naptr: true,
            max_targets: 8,
            max_pending: 1024,
        }
    }
}

/// `[timers]`: RFC 3261 §17.1.1.1 T1, T2, T4.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimersConfig {
    /// RTT estimate, milliseconds (RFC 3261: 500).
    pub t1_ms: u64,
    /// Longest retransmission interval, milliseconds (RFC 3261: 4000).
    pub t2_ms: u64,
    /// Longest time a message stays in the network, milliseconds (RFC 3261: 5000).
    pub t4_ms: u64,
    /// Timer C, seconds: how long an INVITE branch may ring (restarted by each provisional
    /// response) before the proxy CANCELs it and counts it as 408 (RFC 3261 §16.8). The RFC
    /// asks for more than 3 minutes; less works as a no-answer timeout (Kamailio's
    /// `fr_inv_timer`). Default 180.
    pub timer_c_secs: u64,
}

impl Default for TimersConfig {
    fn default() -> Self {
        TimersConfig {
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            timer_c_secs: 180,
        }
    }
}

/// `auth.digest_uri`: whether the digest-uri of credentials must equal the Request-URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestUriSetting {
    /// digest-uri must equal the Request-URI (RFC 3261 §22.4).
    Strict,
    /// Any URI is accepted (SIPp without `-auth_uri` puts the transport target there); the
    /// response still covers the uri that was sent.
    Relaxed,
}

/// `auth.scope`: which requests other than REGISTER are challenged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScopeSetting {
    /// Requests whose From is in one of our domains (default); other domains' requests to
    /// our users pass, the rest get 403.
    LocalUsers,
    /// Every request relayed (a proxy that authenticates all traffic passing through it).
    Everyone,
}

/// `[auth]`: digest authentication (RFC 3261 §22, RFC 7616, RFC 8760) with mutual
/// authentication (Authentication-Info / Proxy-Authentication-Info).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Challenge REGISTER (401) and requests from our users (407). Default: on.
    pub enabled: bool,
    /// Algorithms offered, one challenge each, in this order: `SHA-512-256`, `SHA-256`,
    /// `MD5` (RFC 8760 §2.4 wants the strongest first).
    pub algorithms: Vec<String>,
    /// `strict` (default) or `relaxed`.
    pub digest_uri: DigestUriSetting,
    /// How long a nonce is accepted, seconds; older ones are re-challenged with stale=true.
    pub nonce_lifetime_secs: u64,
    /// Offer the `-sess` variants instead of the plain algorithms.
    pub sess: bool,
    /// Offer qop `auth-int` beside `auth`.
    pub auth_int: bool,
    /// One realm for every challenge; default (unset): the domain of the From (To for
    /// REGISTER) URI, when it is one of `domains`, else the first domain.
    pub realm: Option<String>,
    /// Also challenge mid-dialog requests that follow our Record-Route.
    pub challenge_in_dialog: bool,
    /// Methods never challenged (REGISTER always is; ACK and CANCEL never are).
    pub exempt_methods: Vec<String>,
    /// `local-users` (default) or `everyone`.
    pub scope: ScopeSetting,
    /// The 32-byte secret nonces are made with; default `<data_dir>/nonce.secret`,
    /// generated on first run.
    pub secret_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: true,
            algorithms: vouch_auth::digest::Algorithm::STRONGEST_FIRST
                .iter()
                .map(|a| a.token().to_string())
                .collect(),
            digest_uri: DigestUriSetting::Strict,
            nonce_lifetime_secs: 300,
            sess: false,
            auth_int: true,
            realm: None,
            challenge_in_dialog: false,
            exempt_methods: Vec::new(),
            scope: ScopeSetting::LocalUsers,
            secret_file: None,
        }
    }
}

/// Longest nonce lifetime accepted, seconds (a day).
pub const MAX_NONCE_LIFETIME_SECS: u64 = 86_400;

impl AuthConfig {
    /// The configured algorithms, in order. Only meaningful after [`Config::validate`].
    pub fn algorithm_list(&self) -> Vec<vouch_auth::digest::Algorithm> {
        self.algorithms
            .iter()
            .filter_map(|t| vouch_auth::digest::Algorithm::parse(t))
            .map(|(a, _)| a)
            .collect()
    }

    /// The nonce secret file: `secret_file`, else `<data_dir>/nonce.secret`.
    pub fn secret_path(&self, data_dir: &Path) -> PathBuf {
        self.secret_file
            .clone()
            .unwrap_or_else(|| data_dir.join("nonce.secret"))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, problem: String| Err(ConfigError::Invalid { field, problem });
        if self.algorithms.is_empty() {
            return invalid(
                "auth.algorithms",
                "at least one algorithm is needed (SHA-512-256, SHA-256, MD5)".to_string(),
            );
        }
        let mut seen = Vec::new();
        for t in &self.algorithms {
            match vouch_auth::digest::Algorithm::parse(t) {
                Some((_, true)) => {
                    return invalid(
                        "auth.algorithms",
                        format!("{t:?}: list the plain algorithm and set auth.sess = true"),
                    );
                }
                Some((a, false)) => {
                    if seen.contains(&a) {
                        return invalid("auth.algorithms", format!("{t:?} is listed twice"));
                    }
                    seen.push(a);
                }
                None => {
                    return invalid(
                        "auth.algorithms",
                        format!("unknown algorithm {t:?} (SHA-512-256, SHA-256 or MD5)"),
                    );
                }
            }
        }
        if self.nonce_lifetime_secs == 0 || self.nonce_lifetime_secs > MAX_NONCE_LIFETIME_SECS {
            return invalid(
                "auth.nonce_lifetime_secs",
                format!("must lie between 1 and {MAX_NONCE_LIFETIME_SECS}"),
            );
        }
        if let Some(r) = &self.realm
            && (r.is_empty()
                || r.len() > 256
                || r.chars().any(|c| c.is_control() || c == '"' || c == '\\'))
        {
            return invalid(
                "auth.realm",
                format!("{r:?}: 1-256 printable characters without '\"' or '\\'"),
            );
        }
        for m in &self.exempt_methods {
            let token = !m.is_empty()
                && m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
            if !token {
                return invalid("auth.exempt_methods", format!("{m:?} is not a method name"));
            }
            if m.eq_ignore_ascii_case("REGISTER") {
                return invalid(
                    "auth.exempt_methods",
                    "REGISTER is always authenticated".to_string(),
                );
            }
            if *m != m.to_ascii_uppercase() {
                return invalid(
                    "auth.exempt_methods",
                    format!(
                        "{m:?}: method names are case-sensitive (did you mean {:?}?)",
                        m.to_ascii_uppercase()
                    ),
                );
            }
        }
        if self
            .secret_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return invalid("auth.secret_file", "must not be empty".to_string());
        }
        Ok(())
    }
}

/// `identity.alg`: the RFC 4474 signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum IdentityAlgSetting {
    /// `rsa-sha1`, the one RFC 4474 defines and peers (Kamailio auth_identity) require.
    #[serde(rename = "rsa-sha1")]
    RsaSha1,
    /// `rsa-sha256` (RFC 4474 §13.1 left room for it; not every verifier knows it).
    #[serde(rename = "rsa-sha256")]
    RsaSha256,
}

impl IdentityAlgSetting {
    /// The Identity-Info `alg` token.
    pub fn token(self) -> &'static str {
        match self {
            IdentityAlgSetting::RsaSha1 => "rsa-sha1",
            IdentityAlgSetting::RsaSha256 => "rsa-sha256",
        }
    }
}

impl From<IdentityAlgSetting> for vouch_auth::identity::IdentityAlg {
    fn from(a: IdentityAlgSetting) -> Self {
        match a {
            IdentityAlgSetting::RsaSha1 => vouch_auth::identity::IdentityAlg::RsaSha1,
            IdentityAlgSetting::RsaSha256 => vouch_auth::identity::IdentityAlg::RsaSha256,
        }
    }
}

/// The HTTP listening address of `[identity]` when none is configured.
pub const DEFAULT_IDENTITY_HTTP_LISTEN: &str = "127.0.0.1:8080";

/// `[identity]`: the RFC 4474 authentication service. Requests that digest authentication
/// admitted get Date (when missing), Identity and Identity-Info; the domain certificate is
/// served over HTTP for verifiers (RFC 4474 §9).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Sign requests (needs `[auth] enabled`). Default: on.
    pub sign: bool,
    /// PEM RSA private key of the domain; with `cert`. Default: `<data_dir>/identity.key`,
    /// generated on first run (RSA-2048).
    pub key: Option<PathBuf>,
    /// PEM certificate of `key` (chain allowed, leaf first), naming the domains. Default:
    /// `<data_dir>/identity.pem`, issued by the development CA on first run.
    pub cert: Option<PathBuf>,
    /// `rsa-sha1` (default) or `rsa-sha256`.
    pub alg: IdentityAlgSetting,
    /// Methods signed; default (unset): the engine's list (INVITE, UPDATE, MESSAGE, NOTIFY,
    /// SUBSCRIBE, REFER, BYE, PRACK, INFO, PUBLISH).
    pub methods: Option<Vec<String>>,
    /// The URL put in Identity-Info. Default: `https://<host>:<port>/identity.cer` on the
    /// HTTPS endpoint when `https_listen` is set, else `http://<host>:<port>/identity.cer` on
    /// the HTTP endpoint (host: the endpoint's IP, or when that is unspecified
    /// `advertised_host`, else the first listening IP). Set, it always wins; both endpoints
    /// serve its path.
    pub cert_url: Option<String>,
    /// Where the HTTP endpoint serving the certificate listens (`ip:port`); `""` turns it
    /// off (then `cert_url` must be set and served elsewhere, unless `https_listen` is set).
    pub http_listen: String,
    /// Where the HTTPS endpoint serving the certificate listens (`ip:port`), with the TLS
    /// domain certificate (`[tls]` cert/key, else the development certificates); the same
    /// routes as the HTTP endpoint. Default `""`: off.
    pub https_listen: String,
    /// Connections each certificate endpoint (HTTP, HTTPS) serves at once; more are closed
    /// at once. Default 256.
    pub endpoint_max_connections: usize,
    /// A connection to a certificate endpoint on which nothing is read or written for this
    /// long is closed, seconds. Default 30.
    pub endpoint_idle_timeout_secs: u64,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            sign: true,
            key: None,
            cert: None,
            alg: IdentityAlgSetting::RsaSha1,
            methods: None,
            cert_url: None,
            http_listen: DEFAULT_IDENTITY_HTTP_LISTEN.to_string(),
            https_listen: String::new(),
            endpoint_max_connections: crate::http::EndpointLimits::default().max_connections,
            endpoint_idle_timeout_secs: crate::http::EndpointLimits::default()
                .idle_timeout
                .as_secs(),
        }
    }
}

impl IdentityConfig {
    /// The HTTP endpoint's address; `None` when turned off. Only meaningful after
    /// [`Config::validate`].
    pub fn http_addr(&self) -> Option<SocketAddr> {
        if self.http_listen.is_empty() {
            None
        } else {
            self.http_listen.parse().ok()
        }
    }

    /// The HTTPS endpoint's address; `None` when turned off. Only meaningful after
    /// [`Config::validate`].
    pub fn https_addr(&self) -> Option<SocketAddr> {
        if self.https_listen.is_empty() {
            None
        } else {
            self.https_listen.parse().ok()
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, problem: String| Err(ConfigError::Invalid { field, problem });
        match (&self.key, &self.cert) {
            (Some(_), None) => {
                return invalid(
                    "identity.cert",
                    "identity.key is set but identity.cert is not".into(),
                );
            }
            (None, Some(_)) => {
                return invalid(
                    "identity.key",
                    "identity.cert is set but identity.key is not".into(),
                );
            }
            _ => {}
        }
        if self.endpoint_max_connections == 0 {
            return invalid(
                "identity.endpoint_max_connections",
                "must be at least 1".into(),
            );
        }
        if self.endpoint_idle_timeout_secs == 0 {
            return invalid(
                "identity.endpoint_idle_timeout_secs",
                "must be at least 1".into(),
            );
        }
        if !self.http_listen.is_empty() && self.http_listen.parse::<SocketAddr>().is_err() {
            return invalid(
                "identity.http_listen",
                format!(
                    "{:?} is not an IP address and port (e.g. \"127.0.0.1:8080\"; \"\" turns the endpoint off)",
                    self.http_listen
                ),
            );
        }
        if !self.https_listen.is_empty() {
            match self.https_listen.parse::<SocketAddr>() {
                Err(_) => {
                    return invalid(
                        "identity.https_listen",
                        format!(
                            "{:?} is not an IP address and port (e.g. \"0.0.0.0:8443\"; \"\" turns the endpoint off)",
                            self.https_listen
                        ),
                    );
                }
                Ok(a) if a.port() != 0 && self.http_listen.parse::<SocketAddr>() == Ok(a) => {
                    return invalid(
                        "identity.https_listen",
                        format!("{a} is identity.http_listen too: give HTTPS a port of its own"),
                    );
                }
                Ok(_) => {}
            }
        }
        let serving = !self.http_listen.is_empty() || !self.https_listen.is_empty();
        if let Some(methods) = &self.methods {
            if methods.is_empty() {
                return invalid("identity.methods", "at least one method is needed".into());
            }
            for m in methods {
                let token = !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase() || b == b'-');
                if !token {
                    return invalid(
                        "identity.methods",
                        format!("{m:?} is not an upper-case method name"),
                    );
                }
            }
        }
        match &self.cert_url {
            Some(url) => {
                let Some(path) = url_path(url) else {
                    return invalid(
                        "identity.cert_url",
                        format!("{url:?} is not an http:// or https:// URL with a host"),
                    );
                };
                // Served by the endpoint: a plain path (no captures, no query).
                let plain = path.len() > 1
                    && path
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"/._-~".contains(&b))
                    && !path.contains("//");
                if serving && !plain {
                    return invalid(
                        "identity.cert_url",
                        format!(
                            "{url:?}: the HTTP(S) endpoint serves only plain paths such as /identity.cer (letters, digits, / . _ - ~)"
                        ),
                    );
                }
            }
            None if !serving => {
                return invalid(
                    "identity.cert_url",
                    "must be set when identity.http_listen and identity.https_listen are \"\" (no endpoint to point at)"
                        .into(),
                );
            }
            None => {}
        }
        Ok(())
    }
}

/// `[verification]`: the RFC 4474 verification service (§6) for inbound requests — requests
/// to our domains that digest authentication did not admit (they come from other domains).
/// Identity-Info certificates are fetched off the event loop (http and https only, with a
/// timeout and a size limit, cached by URL); refusals are 428, 436, 437, 438 or 403 with a
/// Warning saying why. Requests our own users send are signed (`[identity]`), not verified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerificationConfig {
    /// Verify inbound requests. Default: off.
    pub enabled: bool,
    /// Answer 428 Use Identity Header to requests of `methods` without Identity. Default: on.
    /// Off: Identity is checked when present, unsigned requests pass.
    pub require_identity: bool,
    /// The methods `require_identity` applies to. Default: INVITE.
    pub methods: Vec<String>,
    /// PEM files of trust anchors (CA certificates, or pinned domain certificates) the signer
    /// certificate must chain to. Default (empty): the development CA `<data_dir>/ca.pem`
    /// when it exists.
    pub trust: Vec<PathBuf>,
    /// Also trust the operating system's CA bundle (`SSL_CERT_FILE`, else
    /// /etc/ssl/certs/ca-certificates.crt and the other usual places). Default: off.
    pub system_roots: bool,
    /// A Date older than this is refused with 403 Stale Date, seconds (RFC 4474 §6.2 step 4
    /// suggests an hour). The replay cache covers this window.
    pub max_age_secs: u64,
    /// Longest a certificate fetch may take, seconds; then the waiting requests get 436.
    pub fetch_timeout_secs: u64,
    /// How long a fetched certificate is reused, seconds.
    pub certificate_ttl_secs: u64,
    /// Most requests waiting for certificates at once; more get 503.
    pub max_pending: usize,
    /// Most verified requests the replay cache holds. Each stays until its Date is older than
    /// `max_age_secs`; when every one is still inside that window, new signed requests get
    /// 503 (the cache fails closed rather than forget one that could then be replayed). Size
    /// it for the verified-request rate times `max_age_secs`. Default: 1,000,000 (under
    /// 40 MB full).
    pub replay_capacity: usize,
}

impl Default for VerificationConfig {
    fn default() -> Self {
        VerificationConfig {
            enabled: false,
            require_identity: true,
            methods: vec!["INVITE".to_string()],
            trust: Vec::new(),
            system_roots: false,
            max_age_secs: 3600,
            fetch_timeout_secs: 3,
            certificate_ttl_secs: 3600,
            max_pending: 1000,
            replay_capacity: vouch_auth::identity::DEFAULT_REPLAY_CAPACITY,
        }
    }
}

impl VerificationConfig {
    /// The trust anchor files: `trust`, or the development CA in `data_dir` when it exists.
    pub fn trust_files(&self, data_dir: &Path) -> Vec<PathBuf> {
        if !self.trust.is_empty() {
            return self.trust.clone();
        }
        let dev_ca = data_dir.join("ca.pem");
        if dev_ca.exists() {
            vec![dev_ca]
        } else {
            Vec::new()
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, problem: String| Err(ConfigError::Invalid { field, problem });
        for m in &self.methods {
            let token = !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase() || b == b'-');
            if !token {
                return invalid(
                    "verification.methods",
                    format!("{m:?} is not an upper-case method name"),
                );
            }
        }
        if self.max_age_secs == 0 || self.max_age_secs > 86_400 {
            return invalid(
                "verification.max_age_secs",
                "must lie between 1 and 86400".into(),
            );
        }
        if self.fetch_timeout_secs == 0 || self.fetch_timeout_secs > 30 {
            return invalid(
                "verification.fetch_timeout_secs",
                "must lie between 1 and 30 (an INVITE client gives up after 32 s)".into(),
            );
        }
        if self.certificate_ttl_secs == 0 {
            return invalid(
                "verification.certificate_ttl_secs",
                "must be at least 1".into(),
            );
        }
        if self.max_pending == 0 {
            return invalid("verification.max_pending", "must be at least 1".into());
        }
        if self.replay_capacity == 0 {
            return invalid("verification.replay_capacity", "must be at least 1".into());
        }
        Ok(())
    }
}

/// `[metrics]`: Prometheus metrics over HTTP at `/metrics` ([`crate::metrics`]), on a
/// listener of their own (not the certificate endpoint, which verifiers of other domains
/// reach). Under the certificate endpoint's default connection limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where the endpoint listens (`ip:port`). Default (unset): no endpoint.
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// The endpoint's address; `None` when off. Only meaningful after [`Config::validate`].
    pub fn addr(&self) -> Option<SocketAddr> {
        self.listen.as_deref()?.parse().ok()
    }

    fn validate(&self, identity: &IdentityConfig) -> Result<(), ConfigError> {
        let Some(listen) = &self.listen else {
            return Ok(());
        };
        let invalid = |problem: String| {
            Err(ConfigError::Invalid {
                field: "metrics.listen",
                problem,
            })
        };
        let Ok(a) = listen.parse::<SocketAddr>() else {
            return invalid(format!(
                "{listen:?} is not an IP address and port (e.g. \"127.0.0.1:9090\"; leave it out to turn the endpoint off)"
            ));
        };
        let taken = [
            ("identity.http_listen", &identity.http_listen),
            ("identity.https_listen", &identity.https_listen),
        ];
        for (field, other) in taken {
            if a.port() != 0 && other.parse::<SocketAddr>() == Ok(a) {
                return invalid(format!(
                    "{a} is {field} too: give metrics a port of its own"
                ));
            }
        }
        Ok(())
    }
}

/// The path of an `http://` or `https://` URL (`/` when it has none), without query or
/// fragment; `None` for other schemes or an empty host.
pub fn url_path(url: &str) -> Option<&str> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &url[7..]
    } else if lower.starts_with("https://") {
        &url[8..]
    } else {
        return None;
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let rest = &rest[..end];
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return None;
    }
    Some(path)
}

impl Default for Config {
    fn default() -> Self {
        let lo = |t, port| ListenAddr {
            transport: t,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        Config {
            data_dir: PathBuf::from("vouch-data"),
            domains: vec!["localhost".to_string()],
            listen: vec![
                lo(TransportKind::Udp, 5060),
                lo(TransportKind::Tcp, 5060),
                lo(TransportKind::Tls, 5061),
            ],
            advertised_host: None,
            hosts: Default::default(),
            dns: DnsConfig::default(),
            tls: TlsConfig::default(),
            registrar: RegistrarConfig::default(),
            limits: LimitsConfig::default(),
            transport: TransportConfig::default(),
            timers: TimersConfig::default(),
            auth: AuthConfig::default(),
            identity: IdentityConfig::default(),
            verification: VerificationConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Config {
    /// Reads, resolves and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut c = Config::from_toml(&text).map_err(|e| match e {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        c.resolve_paths(base);
        Ok(c)
    }

    /// Parses and validates TOML text; relative paths are left as written.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let c: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::from("<config>"),
            message: e.to_string().trim_end().to_string(),
        })?;
        c.validate()?;
        Ok(c)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.data_dir);
        if let Some(p) = self.tls.cert.as_mut() {
            abs(p);
        }
        if let Some(p) = self.tls.key.as_mut() {
            abs(p);
        }
        self.tls.ca.iter_mut().for_each(abs);
        if let Some(p) = self.auth.secret_file.as_mut() {
            abs(p);
        }
        if let Some(p) = self.identity.key.as_mut() {
            abs(p);
        }
        if let Some(p) = self.identity.cert.as_mut() {
            abs(p);
        }
        self.verification.trust.iter_mut().for_each(abs);
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, problem: &str| {
            Err(ConfigError::Invalid {
                field,
                problem: problem.to_string(),
            })
        };
        if self.domains.is_empty() {
            return bad("domains", "at least one domain is needed");
        }
        for d in &self.domains {
            if d.is_empty() || d.contains(|c: char| c.is_whitespace() || "@:;<>/".contains(c)) {
                return Err(ConfigError::Invalid {
                    field: "domains",
                    problem: format!("{d:?} is not a host name"),
                });
            }
        }
        if self.listen.is_empty() {
            return bad("listen", "at least one listening address is needed");
        }
        for (i, a) in self.listen.iter().enumerate() {
            if self.listen[..i].contains(a) {
                return Err(ConfigError::Invalid {
                    field: "listen",
                    problem: format!("{a} is listed twice"),
                });
            }
        }
        if self.data_dir.as_os_str().is_empty() {
            return bad("data_dir", "must not be empty");
        }
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => return bad("tls.key", "tls.cert is set but tls.key is not"),
            (None, Some(_)) => return bad("tls.cert", "tls.key is set but tls.cert is not"),
            _ => {}
        }
        let r = &self.registrar;
        if r.min_expires == 0 {
            return bad("registrar.min_expires", "must be at least 1");
        }
        if r.min_expires > r.max_expires {
            return bad(
                "registrar.min_expires",
                "is larger than registrar.max_expires",
            );
        }
        if r.default_expires < r.min_expires || r.default_expires > r.max_expires {
            return bad(
                "registrar.default_expires",
                "must lie between registrar.min_expires and registrar.max_expires",
            );
        }
        if r.persist_interval_ms > MAX_PERSIST_INTERVAL_MS {
            return bad(
                "registrar.persist_interval_ms",
                "must be at most 60000 (one minute)",
            );
        }
        let l = &self.limits;
        // A message smaller than ~200 bytes cannot carry the mandatory headers.
        if l.max_message_size < 256 {
            return bad("limits.max_message_size", "must be at least 256");
        }
        if l.max_headers < 6 {
            return bad(
                "limits.max_headers",
                "must be at least 6 (the mandatory headers)",
            );
        }
        if l.max_line_length < 64 {
            return bad("limits.max_line_length", "must be at least 64");
        }
        if l.max_vias == 0 {
            return bad("limits.max_vias", "must be at least 1");
        }
        let t = &self.transport;
        if t.idle_timeout_secs == 0 {
            return bad("transport.idle_timeout_secs", "must be at least 1");
        }
        if t.connect_timeout_secs == 0 {
            return bad("transport.connect_timeout_secs", "must be at least 1");
        }
        if t.max_connections == 0 {
            return bad("transport.max_connections", "must be at least 1");
        }
        if t.send_queue == 0 {
            return bad("transport.send_queue", "must be at least 1");
        }
        let tm = &self.timers;
        if tm.t1_ms == 0 || tm.t2_ms < tm.t1_ms || tm.t4_ms == 0 {
            return bad(
                "timers",
                "need t1_ms > 0, t2_ms >= t1_ms and t4_ms > 0 (RFC 3261 §17.1.1.1)",
            );
        }
        if tm.timer_c_secs == 0 {
            return bad("timers.timer_c_secs", "must be at least 1");
        }
        let d = &self.dns;
        if d.timeout_ms == 0 {
            return bad("dns.timeout_ms", "must be at least 1");
        }
        if d.max_targets == 0 {
            return bad("dns.max_targets", "must be at least 1");
        }
        if d.max_pending == 0 {
            return bad("dns.max_pending", "must be at least 1");
        }
        self.auth.validate()?;
        self.identity.validate()?;
        self.verification.validate()?;
        self.metrics.validate(&self.identity)
    }

    /// Whether a TLS certificate is needed: a TLS listener is configured, or the HTTPS
    /// certificate endpoint ([`Config::wants_https_endpoint`]).
    pub fn wants_tls(&self) -> bool {
        self.listen
            .iter()
            .any(|l| l.transport == TransportKind::Tls)
            || self.wants_https_endpoint()
    }

    /// Whether the identity certificate is to be served over HTTPS: `[identity] https_listen`
    /// is set and the endpoint runs at all (signing on, with `[auth] enabled`). The HTTPS
    /// endpoint needs the TLS domain certificate.
    pub fn wants_https_endpoint(&self) -> bool {
        !self.identity.https_listen.is_empty() && self.identity.sign && self.auth.enabled
    }

    /// The RFC 3261 timer settings.
    pub fn transaction_config(&self) -> crate::engine::TransactionConfig {
        crate::engine::TransactionConfig {
            t1: Duration::from_millis(self.timers.t1_ms),
            t2: Duration::from_millis(self.timers.t2_ms),
            t4: Duration::from_millis(self.timers.t4_ms),
            timer_c: Duration::from_secs(self.timers.timer_c_secs),
            // §17.2.1: no 100 Trying before a response the core sends at once (the 407
            // challenge to every first INVITE): one message less each way. Due at once, the
            // 100 goes at the next timer run, after the core had its turn.
            trying: crate::engine::TryingPolicy::AfterDelay(Duration::ZERO),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_zero_configuration() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.domains, vec!["localhost"]);
        assert_eq!(c.listen.len(), 3);
        assert!(c.wants_tls());
    }

    #[test]
    fn parses_listen_addresses() {
        let c = Config::from_toml(r#"listen = ["udp:127.0.0.1:5070", "TLS:[::1]:5071"]"#).unwrap();
        assert_eq!(c.listen[0].to_string(), "udp:127.0.0.1:5070");
        assert_eq!(c.listen[1].transport, TransportKind::Tls);
        assert_eq!(c.listen[1].addr.port(), 5071);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = Config::from_toml(r#"listen = ["sctp:127.0.0.1:5060"]"#).unwrap_err();
        assert!(e.to_string().contains("unknown transport"), "{e}");
        let e = Config::from_toml("domian = [\"x\"]").unwrap_err();
        assert!(e.to_string().contains("domian"), "{e}");
        let e = Config::from_toml("[registrar]\nmin_expires = 100\nmax_expires = 50").unwrap_err();
        assert!(e.to_string().contains("registrar.min_expires"), "{e}");
        let e = Config::from_toml("[registrar]\npersist_interval_ms = 600000").unwrap_err();
        assert!(
            e.to_string().contains("registrar.persist_interval_ms"),
            "{e}"
        );
        let e = Config::from_toml("[tls]\ncert = \"a.pem\"").unwrap_err();
        assert!(e.to_string().contains("tls.key"), "{e}");
    }

    #[test]
    fn example_file_documents_the_defaults() {
        let text = include_str!("../../../examples/vouch.toml");
        let c = Config::from_toml(text).unwrap();
        let d = Config::default();
        assert_eq!(c.data_dir, d.data_dir);
        assert_eq!(c.domains, d.domains);
        assert_eq!(c.listen, d.listen);
        assert_eq!(c.registrar.min_expires, d.registrar.min_expires);
        assert_eq!(c.registrar.max_expires, d.registrar.max_expires);
        assert_eq!(c.registrar.default_expires, d.registrar.default_expires);
        assert_eq!(
            c.registrar.persist_interval_ms,
            d.registrar.persist_interval_ms
        );
        assert_eq!(
            vouch_msg::Limits::from(c.limits),
            vouch_msg::Limits::from(d.limits)
        );
        assert_eq!(c.dns.enabled, d.dns.enabled);
        assert_eq!(c.dns.nameservers, d.dns.nameservers);
        assert_eq!(c.dns.timeout_ms, d.dns.timeout_ms);
        assert_eq!(c.dns.naptr, d.dns.naptr);
        assert_eq!(c.dns.max_targets, d.dns.max_targets);
        assert_eq!(c.dns.max_pending, d.dns.max_pending);
        assert_eq!(c.transport.idle_timeout_secs, d.transport.idle_timeout_secs);
        assert_eq!(
            c.transport.connect_timeout_secs,
            d.transport.connect_timeout_secs
        );
        assert_eq!(c.transport.max_connections, d.transport.max_connections);
        assert_eq!(c.transport.send_queue, d.transport.send_queue);
        assert_eq!(c.timers.t1_ms, d.timers.t1_ms);
        assert_eq!(c.timers.t2_ms, d.timers.t2_ms);
        assert_eq!(c.timers.t4_ms, d.timers.t4_ms);
        assert_eq!(c.timers.timer_c_secs, d.timers.timer_c_secs);
        assert_eq!(c.auth.enabled, d.auth.enabled);
        assert_eq!(c.auth.algorithms, d.auth.algorithms);
        assert_eq!(c.auth.digest_uri, d.auth.digest_uri);
        assert_eq!(c.auth.nonce_lifetime_secs, d.auth.nonce_lifetime_secs);
        assert_eq!(c.auth.sess, d.auth.sess);
        assert_eq!(c.auth.auth_int, d.auth.auth_int);
        assert_eq!(c.auth.realm, d.auth.realm);
        assert_eq!(c.auth.challenge_in_dialog, d.auth.challenge_in_dialog);
        assert_eq!(c.auth.exempt_methods, d.auth.exempt_methods);
        assert_eq!(c.auth.scope, d.auth.scope);
        assert_eq!(c.auth.secret_file, d.auth.secret_file);
        assert_eq!(c.identity.sign, d.identity.sign);
        assert_eq!(c.identity.key, d.identity.key);
        assert_eq!(c.identity.cert, d.identity.cert);
        assert_eq!(c.identity.alg, d.identity.alg);
        assert_eq!(c.identity.methods, d.identity.methods);
        assert_eq!(c.identity.cert_url, d.identity.cert_url);
        assert_eq!(c.identity.http_listen, d.identity.http_listen);
        assert_eq!(c.identity.https_listen, d.identity.https_listen);
        assert_eq!(
            c.identity.endpoint_max_connections,
            d.identity.endpoint_max_connections
        );
        assert_eq!(
            c.identity.endpoint_idle_timeout_secs,
            d.identity.endpoint_idle_timeout_secs
        );
        let (v, dv) = (&c.verification, &d.verification);
        assert_eq!(v.enabled, dv.enabled);
        assert_eq!(v.require_identity, dv.require_identity);
        assert_eq!(v.methods, dv.methods);
        assert_eq!(v.trust, dv.trust);
        assert_eq!(v.system_roots, dv.system_roots);
        assert_eq!(v.max_age_secs, dv.max_age_secs);
        assert_eq!(v.fetch_timeout_secs, dv.fetch_timeout_secs);
        assert_eq!(v.certificate_ttl_secs, dv.certificate_ttl_secs);
        assert_eq!(v.max_pending, dv.max_pending);
        assert_eq!(v.replay_capacity, dv.replay_capacity);
        assert_eq!(c.metrics.listen, d.metrics.listen);
        // Every commented-out option is a real one.
        let uncommented: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains(" = "))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        Config::from_toml(&uncommented).unwrap();
    }

    #[test]
    fn auth_defaults_and_errors() {
        let a = Config::default().auth;
        assert!(a.enabled);
        assert_eq!(a.algorithms, ["SHA-512-256", "SHA-256", "MD5"]);
        assert_eq!(a.digest_uri, DigestUriSetting::Strict);
        assert!(!a.challenge_in_dialog);
        assert_eq!(a.scope, ScopeSetting::LocalUsers);
        assert_eq!(
            a.secret_path(Path::new("/d")),
            PathBuf::from("/d/nonce.secret")
        );
        let c = Config::from_toml(
            "[auth]
enabled = false
digest_uri = \"relaxed\"",
        )
        .unwrap();
        assert!(!c.auth.enabled);
        assert_eq!(c.auth.digest_uri, DigestUriSetting::Relaxed);
        let cases = [
            ("algorithms = []", "auth.algorithms"),
            ("algorithms = [\"SHA-1\"]", "unknown algorithm"),
            ("algorithms = [\"MD5-sess\"]", "auth.sess"),
            ("algorithms = [\"MD5\", \"md5\"]", "twice"),
            ("digest_uri = \"loose\"", "digest_uri"),
            ("nonce_lifetime_secs = 0", "auth.nonce_lifetime_secs"),
            ("nonce_lifetime_secs = 100000", "auth.nonce_lifetime_secs"),
            ("realm = \"a\\\"b\"", "auth.realm"),
            ("exempt_methods = [\"REGISTER\"]", "always authenticated"),
            ("exempt_methods = [\"options\"]", "OPTIONS"),
            ("exempt_methods = [\"OP TIONS\"]", "not a method"),
            ("secret_file = \"\"", "auth.secret_file"),
            ("enable = true", "enable"),
        ];
        for (line, needle) in cases {
            let e = Config::from_toml(&format!("[auth]\n{line}\n")).unwrap_err();
            assert!(e.to_string().contains(needle), "{line}: {e}");
        }
    }

    #[test]
    fn identity_defaults_and_errors() {
        let i = Config::default().identity;
        assert!(i.sign);
        assert_eq!(i.alg, IdentityAlgSetting::RsaSha1);
        assert_eq!(
            i.http_addr(),
            Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
        );
        assert_eq!(i.methods, None);
        let c = Config::from_toml(
            "[identity]\nalg = \"rsa-sha256\"\nhttp_listen = \"\"\ncert_url = \"https://sip.example.com/c.cer\"\nmethods = [\"INVITE\"]\n",
        )
        .unwrap();
        assert_eq!(c.identity.alg, IdentityAlgSetting::RsaSha256);
        assert_eq!(c.identity.http_addr(), None);
        assert_eq!(c.identity.https_addr(), None);
        assert_eq!(i.https_addr(), None, "HTTPS is off by default");
        // HTTPS alone is an endpoint to point at: cert_url may stay unset.
        let c = Config::from_toml(
            "listen = [\"udp:127.0.0.1:5060\"]\n[identity]\nhttp_listen = \"\"\nhttps_listen = \"0.0.0.0:8443\"\n",
        )
        .unwrap();
        assert_eq!(
            c.identity.https_addr(),
            Some(SocketAddr::from(([0, 0, 0, 0], 8443)))
        );
        assert!(
            c.wants_tls(),
            "the HTTPS endpoint needs the TLS certificate"
        );
        let mut off = c.clone();
        off.identity.sign = false;
        assert!(!off.wants_https_endpoint(), "no endpoint without signing");
        assert!(!off.wants_tls());
        let cases = [
            ("alg = \"rsa-md5\"", "alg"),
            ("key = \"k.pem\"", "identity.cert"),
            ("cert = \"c.pem\"", "identity.key"),
            ("http_listen = \"localhost:80\"", "identity.http_listen"),
            (
                "endpoint_max_connections = 0",
                "identity.endpoint_max_connections",
            ),
            (
                "endpoint_idle_timeout_secs = 0",
                "identity.endpoint_idle_timeout_secs",
            ),
            ("http_listen = \"\"", "identity.cert_url"),
            ("https_listen = \"localhost:443\"", "identity.https_listen"),
            ("https_listen = \"127.0.0.1:8080\"", "identity.https_listen"),
            (
                "http_listen = \"\"\nhttps_listen = \"0.0.0.0:8443\"\ncert_url = \"https://x/{id}\"",
                "plain paths",
            ),
            ("cert_url = \"ftp://x/c\"", "identity.cert_url"),
            ("cert_url = \"http://x/{id}\"", "plain paths"),
            ("methods = []", "identity.methods"),
            ("methods = [\"invite\"]", "identity.methods"),
            ("signing = true", "signing"),
        ];
        for (line, needle) in cases {
            let e = Config::from_toml(&format!("[identity]\n{line}\n")).unwrap_err();
            assert!(e.to_string().contains(needle), "{line}: {e}");
        }
        assert_eq!(
            url_path("http://h:8080/identity.cer?x=1"),
            Some("/identity.cer")
        );
        assert_eq!(url_path("HTTPS://h"), Some("/"));
        assert_eq!(url_path("http:///x"), None);
    }

    #[test]
    fn verification_defaults_and_errors() {
        let v = Config::default().verification;
        assert!(!v.enabled);
        assert!(v.require_identity);
        assert_eq!(v.methods, ["INVITE"]);
        let dir = tempfile::tempdir().unwrap();
        assert!(v.trust_files(dir.path()).is_empty());
        std::fs::write(dir.path().join("ca.pem"), "").unwrap();
        assert_eq!(v.trust_files(dir.path()), vec![dir.path().join("ca.pem")]);
        let c = Config::from_toml(
            "[verification]\nenabled = true\nmethods = [\"INVITE\", \"MESSAGE\"]\ntrust = [\"/etc/ca.pem\"]\n",
        )
        .unwrap();
        assert!(c.verification.enabled);
        assert_eq!(
            c.verification.trust_files(dir.path()),
            vec![PathBuf::from("/etc/ca.pem")]
        );
        let cases = [
            ("methods = [\"invite\"]", "verification.methods"),
            ("max_age_secs = 0", "verification.max_age_secs"),
            ("fetch_timeout_secs = 0", "verification.fetch_timeout_secs"),
            ("fetch_timeout_secs = 60", "verification.fetch_timeout_secs"),
            (
                "certificate_ttl_secs = 0",
                "verification.certificate_ttl_secs",
            ),
            ("max_pending = 0", "verification.max_pending"),
            ("replay_capacity = 0", "verification.replay_capacity"),
            ("enable = true", "enable"),
        ];
        for (line, needle) in cases {
            let e = Config::from_toml(&format!("[verification]\n{line}\n")).unwrap_err();
            assert!(e.to_string().contains(needle), "{line}: {e}");
        }
    }

    #[test]
    fn metrics_defaults_and_errors() {
        assert_eq!(Config::default().metrics.addr(), None, "off by default");
        let c = Config::from_toml("[metrics]\nlisten = \"127.0.0.1:9090\"\n").unwrap();
        assert_eq!(
            c.metrics.addr(),
            Some(SocketAddr::from(([127, 0, 0, 1], 9090)))
        );
        let cases = [
            ("listen = \"localhost:9090\"", "metrics.listen"),
            (
                "listen = \"9090\"",
                "\"9090\" is not an IP address and port",
            ),
            ("listen = \"\"", "metrics.listen"),
            ("listen = \"127.0.0.1:8080\"", "identity.http_listen too"),
            ("listen = 9090", "listen"),
            ("listn = \"127.0.0.1:9090\"", "listn"),
        ];
        for (line, needle) in cases {
            let e = Config::from_toml(&format!("[metrics]\n{line}\n")).unwrap_err();
            assert!(e.to_string().contains(needle), "{line}: {e}");
        }
        let e = Config::from_toml("[metrics]\nlisten = \"x\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: metrics.listen: \"x\" is not an IP address and port (e.g. \"127.0.0.1:9090\"; leave it out to turn the endpoint off)"
        );
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("v.toml");
        std::fs::write(
            &f,
            "data_dir = \"d\"\n[tls]\ncert = \"c.pem\"\nkey = \"/k.pem\"\n[auth]\nsecret_file = \"s/nonce\"\n",
        )
        .unwrap();
        let c = Config::load(&f).unwrap();
        assert_eq!(c.data_dir, dir.path().join("d"));
        assert_eq!(c.tls.cert.unwrap(), dir.path().join("c.pem"));
        assert_eq!(c.tls.key.unwrap(), PathBuf::from("/k.pem"));
        assert_eq!(c.auth.secret_path(&c.data_dir), dir.path().join("s/nonce"));
    }
}
