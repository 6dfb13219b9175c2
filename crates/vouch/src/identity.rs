//! RFC 4474 identity signing in the driver: the domain's RSA key and certificate, loaded from
//! `[identity]` (or the development ones [`crate::tls::ensure_dev_identity`] makes), the URL
//! verifiers fetch the certificate from, and the engine's
//! [`vouch_proto::AuthenticationService`] built from them; and for
//! `[verification]` the engine's RFC 4474 §6 verifier (trust anchors, Date window) with the
//! [`CertFetcher`] the driver runs for its certificate fetches.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use vouch_auth::identity::{RsaSigningKey, TrustStore, Verifier, VerifierConfig};
use vouch_proto::{AuthenticationService, VerificationPolicy};

use crate::cert_fetch::{CertFetcher, FetchConfig, FetchError};
use crate::config::{Config, IdentityConfig};

/// Problems with the signing key or certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentitySetupError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key or certificate is not usable.
    #[error("{path}: {problem}")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Verification is on but nothing is trusted: every signed request would get 437.
    #[error(
        "[verification] is enabled but has no trust anchors: set verification.trust, turn on verification.system_roots, or let vouch generate the development CA"
    )]
    NoTrustAnchors,
    /// The certificate fetcher could not be built.
    #[error("certificate fetcher: {0}")]
    Fetcher(#[from] FetchError),
}

/// The signing key and the certificate verifiers fetch.
#[derive(Debug, Clone)]
pub struct IdentityMaterial {
    /// The domain's RSA private key.
    pub key: Arc<RsaSigningKey>,
    /// The leaf certificate, DER (served as `application/pkix-cert`, RFC 4474 §9).
    pub cert_der: Bytes,
    /// The certificate file as PEM (the leaf, then any chain it holds).
    pub cert_pem: Bytes,
}

impl IdentityMaterial {
    /// Reads a PEM RSA private key and a PEM certificate (chain allowed, leaf first).
    pub fn load(key: &Path, cert: &Path) -> Result<IdentityMaterial, IdentitySetupError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| IdentitySetupError::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        let unusable = |p: &Path, problem: String| IdentitySetupError::Unusable {
            path: p.to_path_buf(),
            problem,
        };
        let signing = RsaSigningKey::from_pem(&read(key)?).map_err(|e| {
            unusable(
                key,
                format!("not an RSA private key ({e}); RFC 4474 signs with RSA"),
            )
        })?;
        let pem = read(cert)?;
        let chain = crate::tls::load_certs(cert).map_err(|e| unusable(cert, e.to_string()))?;
        let leaf = chain
            .first()
            .ok_or_else(|| unusable(cert, "no CERTIFICATE in the file".into()))?;
        Ok(IdentityMaterial {
            key: Arc::new(signing),
            cert_der: Bytes::copy_from_slice(leaf.as_ref()),
            cert_pem: Bytes::from(pem),
        })
    }
}

/// The default Identity-Info URL for an HTTP endpoint bound to `http`:
/// `http://<host>:<port>/identity.cer`, host being the endpoint's IP, or when that is
/// unspecified (`0.0.0.0`, `[::]`) `advertised_host`, else the first specific listening IP.
pub fn default_cert_url(config: &Config, http: SocketAddr) -> String {
    endpoint_url(config, "http", http)
}

/// The default Identity-Info URL for an HTTPS endpoint bound to `https` (used when
/// `[identity] https_listen` is set and `cert_url` is not):
/// `https://<host>:<port>/identity.cer`, host chosen as in [`default_cert_url`]. Verifiers
/// check the TLS domain certificate against that host, so it must name it (the development
/// certificate names the domains and the specific listening and HTTPS addresses).
pub fn default_https_cert_url(config: &Config, https: SocketAddr) -> String {
    endpoint_url(config, "https", https)
}

fn endpoint_url(config: &Config, scheme: &str, http: SocketAddr) -> String {
    let host = if !http.ip().is_unspecified() {
        ip_host(http.ip())
    } else if let Some(h) = &config.advertised_host {
        h.clone()
    } else {
        config
            .listen
            .iter()
            .map(|l| l.addr.ip())
            .find(|ip| !ip.is_unspecified())
            .map_or_else(|| "127.0.0.1".to_string(), ip_host)
    };
    format!("{scheme}://{host}:{}/identity.cer", http.port())
}

fn ip_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The engine's authentication service for `material`, pointing at `cert_url`, with the
/// configured algorithm and methods; warns when the certificate is not valid at `now_unix`.
pub fn authentication_service(
    identity: &IdentityConfig,
    material: &IdentityMaterial,
    cert_url: &str,
    now_unix: i64,
) -> AuthenticationService {
    let mut svc =
        AuthenticationService::new(material.key.clone(), cert_url).with_alg(identity.alg.into());
    if let Some(m) = &identity.methods {
        svc = svc.with_methods(m.clone());
    }
    // IdentityMaterial::load parsed the certificate, so its validity is readable; nothing is
    // signed outside it (RFC 4474 §5 step 3).
    if let Ok((not_before, not_after)) =
        vouch_auth::identity::certificate_validity(&material.cert_der)
    {
        if !(not_before..=not_after).contains(&now_unix) {
            tracing::warn!(
                not_before,
                not_after,
                now = now_unix,
                "the identity certificate is not valid now: requests will not be signed (500)"
            );
        }
        svc = svc.with_certificate_validity(not_before, not_after);
    }
    svc
}

/// Where operating systems keep their CA bundle, most common first (after `SSL_CERT_FILE`).
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// What `[verification]` gives the driver: the engine's verifier and policy, and the fetcher
/// that serves its certificate requests.
#[derive(Debug)]
pub struct VerificationSetup {
    /// Trust anchors and the Date window.
    pub verifier: Verifier,
    /// When Identity is required and how long requests may wait.
    pub policy: VerificationPolicy,
    /// Fetches Identity-Info certificates (with its own TTL and negative cache).
    pub fetcher: CertFetcher,
    /// How many trust anchors were loaded.
    pub anchors: usize,
}

/// Loads the trust anchors of `[verification]` (see
/// [`VerificationConfig::trust_files`](crate::config::VerificationConfig::trust_files) and
/// `system_roots`) and builds the verifier, the engine policy and the fetcher. The engine
/// waits two seconds longer than the fetch timeout, so that normally the fetcher's own
/// timeout answers (naming the URL) and the engine's deadline only catches a lost fetch.
pub fn verification_setup(config: &Config) -> Result<VerificationSetup, IdentitySetupError> {
    let v = &config.verification;
    let mut trust = TrustStore::new();
    let mut pem = Vec::new();
    let mut files = v.trust_files(&config.data_dir);
    if v.system_roots {
        let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
        let bundle = from_env
            .into_iter()
            .chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from))
            .find(|p| p.exists());
        files.extend(bundle);
    }
    for path in &files {
        let data = std::fs::read(path).map_err(|source| IdentitySetupError::Io {
            path: path.clone(),
            source,
        })?;
        trust
            .add_pem_or_der(&data)
            .map_err(|e| IdentitySetupError::Unusable {
                path: path.clone(),
                problem: e.to_string(),
            })?;
        pem.extend_from_slice(&data);
        pem.push(b'\n');
    }
    if trust.is_empty() {
        return Err(IdentitySetupError::NoTrustAnchors);
    }
    let anchors = trust.len();
    let max_age = i64::try_from(v.max_age_secs).unwrap_or(i64::MAX);
    let verifier = Verifier::new(
        VerifierConfig {
            max_age,
            replay_capacity: v.replay_capacity,
            ..VerifierConfig::default()
        },
        trust,
    );
    let fetch_timeout = std::time::Duration::from_secs(v.fetch_timeout_secs);
    let policy = VerificationPolicy {
        require_identity: if v.require_identity {
            v.methods.clone()
        } else {
            Vec::new()
        },
        max_parked: v.max_pending,
        fetch_deadline: fetch_timeout + std::time::Duration::from_secs(2),
        certificate_ttl: std::time::Duration::from_secs(v.certificate_ttl_secs),
        ..VerificationPolicy::default()
    };
    let fetcher = CertFetcher::new(FetchConfig {
        timeout: fetch_timeout,
        ttl: std::time::Duration::from_secs(v.certificate_ttl_secs),
        https_roots_pem: pem,
        ..FetchConfig::default()
    })?;
    Ok(VerificationSetup {
        verifier,
        policy,
        fetcher,
        anchors,
    })
}
