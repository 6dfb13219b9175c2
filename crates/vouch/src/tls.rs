//! TLS material for the SIPS transport (RFC 3261 §26.2, RFC 5922 for domain certificates):
//! a development CA and domain certificate generated on first run, PEM loading, and the rustls
//! configurations (aws-lc-rs provider) for accepting and for opening connections.
//!
//! Incoming SIP connections request a client certificate but do not require one (RFC 5923
//! peers and phones with user certificates send one, most phones none); a certificate that is
//! sent must chain to a configured trust anchor or the handshake fails. The HTTPS certificate
//! endpoint (RFC 4474 §9) has a configuration of its own that asks for none: anyone may
//! fetch the certificate. Outgoing connections verify the server against the configured trust
//! anchors and present the domain certificate, so two vouch servers authenticate each other
//! (RFC 5922 §7.4 mutual TLS between proxies).

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use vouch_auth::client_cert::ClientCertificateValidator;

/// TLS set-up errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{path}: {problem}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the material (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A trust anchor or verifier could not be built.
    #[error("TLS trust anchors: {0}")]
    Verifier(String),
}

/// What [`ensure_dev_certs`] did.
#[derive(Debug, Clone)]
pub struct DevCerts {
    /// The development CA certificate (trust anchor), `ca.pem`.
    pub ca_cert: PathBuf,
    /// The CA's private key, `ca.key` (kept to issue further certificates).
    pub ca_key: PathBuf,
    /// The domain certificate chain, `domain.pem` (leaf, then the CA).
    pub domain_cert: PathBuf,
    /// The domain certificate's private key, `domain.key`.
    pub domain_key: PathBuf,
    /// Whether they were generated now (false: existing files reused).
    pub generated: bool,
    /// The names in the domain certificate's subjectAltName (empty when reused).
    pub names: Vec<String>,
}

/// Makes sure a development CA and a domain certificate exist in `dir`, generating the domain
/// certificate when any of `ca.pem`, `domain.pem`, `domain.key` is missing (and the CA when
/// `ca.pem` or `ca.key` is: an existing CA is reused, so certificates it issued earlier, such
/// as `identity.pem`, stay valid). The domain certificate (ECDSA
/// P-256, signed by the CA) names each domain as a DNS name and as a `sip:` URI (RFC 5922
/// §7.1 accepts either), and the given IP addresses, so that a peer connecting by address can
/// verify it too.
///
/// `now_unix` sets the validity: from a day before now for ten years.
pub fn ensure_dev_certs(
    dir: &Path,
    domains: &[String],
    ips: &[IpAddr],
    now_unix: i64,
) -> Result<DevCerts, TlsError> {
    let out = DevCerts {
        ca_cert: dir.join("ca.pem"),
        ca_key: dir.join("ca.key"),
        domain_cert: dir.join("domain.pem"),
        domain_key: dir.join("domain.key"),
        generated: false,
        names: Vec::new(),
    };
    if out.domain_cert.exists() && out.domain_key.exists() && out.ca_cert.exists() {
        return Ok(out);
    }
    let (issuer, ca_pem, _) = ensure_dev_ca(dir, now_unix)?;

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    let first = domains.first().map_or("localhost", String::as_str);
    leaf.distinguished_name.push(DnType::CommonName, first);
    let mut names = Vec::new();
    for d in domains {
        leaf.subject_alt_names
            .push(SanType::DnsName(d.as_str().try_into()?));
        let uri = format!("sip:{d}");
        leaf.subject_alt_names
            .push(SanType::URI(uri.as_str().try_into()?));
        names.push(format!("DNS:{d}"));
        names.push(format!("URI:{uri}"));
    }
    for ip in ips {
        leaf.subject_alt_names.push(SanType::IpAddress(*ip));
        names.push(format!("IP:{ip}"));
    }
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // serverAuth to accept connections, clientAuth to present it on outgoing ones.
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    leaf.use_authority_key_identifier_extension = true;
    set_validity(&mut leaf, now_unix);
    let leaf_cert = leaf.signed_by(&key, &issuer)?;

    let chain = format!("{}{ca_pem}", leaf_cert.pem());
    write_file(&out.domain_cert, chain.as_bytes(), false)?;
    write_file(&out.domain_key, key.serialize_pem().as_bytes(), true)?;
    Ok(DevCerts {
        generated: true,
        names,
        ..out
    })
}

/// The development CA in `dir` (`ca.pem`, `ca.key`), made when either file is missing: an
/// issuer for further certificates, the CA certificate in PEM, and whether it was made now.
pub fn ensure_dev_ca(
    dir: &Path,
    now_unix: i64,
) -> Result<(Issuer<'static, KeyPair>, String, bool), TlsError> {
    let cert_path = dir.join("ca.pem");
    let key_path = dir.join("ca.key");
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| TlsError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    if cert_path.exists() && key_path.exists() {
        let pem = read(&cert_path)?;
        let key = KeyPair::from_pem(&read(&key_path)?).map_err(|e| TlsError::Pem {
            path: key_path.clone(),
            problem: e.to_string(),
        })?;
        let issuer = Issuer::from_ca_cert_pem(&pem, key).map_err(|e| TlsError::Pem {
            path: cert_path.clone(),
            problem: e.to_string(),
        })?;
        return Ok((issuer, pem, false));
    }
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "vouch development CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "vouch (development only)");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut ca, now_unix);
    let ca_cert = ca.self_signed(&ca_key)?;
    write_file(&cert_path, ca_cert.pem().as_bytes(), false)?;
    write_file(&key_path, ca_key.serialize_pem().as_bytes(), true)?;
    Ok((Issuer::new(ca, ca_key), ca_cert.pem(), true))
}

/// What [`ensure_dev_identity`] did.
#[derive(Debug, Clone)]
pub struct DevIdentity {
    /// The RSA private key, `identity.key`.
    pub key: PathBuf,
    /// The certificate, `identity.pem` (the leaf only: verifiers fetch it and chain it to
    /// the development CA).
    pub cert: PathBuf,
    /// The development CA certificate that issued it, `ca.pem`.
    pub ca_cert: PathBuf,
    /// Whether the key and certificate were generated now (false: reused).
    pub generated: bool,
    /// Whether the development CA was generated now.
    pub ca_generated: bool,
    /// The names in the certificate's subjectAltName (empty when reused).
    pub names: Vec<String>,
}

/// Makes sure an RFC 4474 signing key and certificate exist in `dir`, generating them when
/// `identity.key` or `identity.pem` is missing: an RSA-2048 key (rsa-sha1 and rsa-sha256 are
/// RSA signatures) and a certificate issued by the development CA (made too if missing), with
/// CN the first domain and each domain as a DNS name and a `sip:` URI in subjectAltName
/// (RFC 4474 §13.4: the verifier matches the From domain against them).
pub fn ensure_dev_identity(
    dir: &Path,
    domains: &[String],
    now_unix: i64,
) -> Result<DevIdentity, TlsError> {
    let mut out = DevIdentity {
        key: dir.join("identity.key"),
        cert: dir.join("identity.pem"),
        ca_cert: dir.join("ca.pem"),
        generated: false,
        ca_generated: false,
        names: Vec::new(),
    };
    if out.key.exists() && out.cert.exists() {
        return Ok(out);
    }
    let (issuer, _, ca_generated) = ensure_dev_ca(dir, now_unix)?;
    let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    let first = domains.first().map_or("localhost", String::as_str);
    leaf.distinguished_name.push(DnType::CommonName, first);
    for d in domains {
        leaf.subject_alt_names
            .push(SanType::DnsName(d.as_str().try_into()?));
        let uri = format!("sip:{d}");
        leaf.subject_alt_names
            .push(SanType::URI(uri.as_str().try_into()?));
        out.names.push(format!("DNS:{d}"));
        out.names.push(format!("URI:{uri}"));
    }
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.use_authority_key_identifier_extension = true;
    set_validity(&mut leaf, now_unix);
    let cert = leaf.signed_by(&key, &issuer)?;
    write_file(&out.key, key.serialize_pem().as_bytes(), true)?;
    write_file(&out.cert, cert.pem().as_bytes(), false)?;
    out.generated = true;
    out.ca_generated = ca_generated;
    Ok(out)
}

/// Days since 1970-01-01 to a civil (year, month, day) — Howard Hinnant's algorithm, to avoid
/// a date crate for two timestamps.
fn civil(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

/// Valid from a day before `now` until ten years after.
fn set_validity(p: &mut CertificateParams, now_unix: i64) {
    let days = now_unix.div_euclid(86_400);
    let (y, m, d) = civil(days - 1);
    p.not_before = rcgen::date_time_ymd(y, m, d);
    // Day 28 exists in every month, so the end date is valid in leap and common years.
    let (y2, m2, d2) = civil(days);
    p.not_after = rcgen::date_time_ymd(y2 + 10, m2, d2.min(28));
}

fn write_file(path: &Path, data: &[u8], private: bool) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        // Private keys readable by the owner only.
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Reads every certificate from a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, e, "no CERTIFICATE in the file"))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            problem: "no CERTIFICATE in the file".into(),
        });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, SEC1 or PKCS#1) from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(path, e, "no private key in the file"))
}

fn pem_error(path: &Path, e: rustls::pki_types::pem::Error, none: &str) -> TlsError {
    match e {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Io {
            path: path.to_path_buf(),
            source,
        },
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Pem {
            path: path.to_path_buf(),
            problem: none.into(),
        },
        other => TlsError::Pem {
            path: path.to_path_buf(),
            problem: other.to_string(),
        },
    }
}

/// Adds every certificate of the PEM files `cas` to `roots`, and returns them.
fn add_anchors(
    roots: &mut RootCertStore,
    cas: &[PathBuf],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut added = Vec::new();
    for ca in cas {
        for c in load_certs(ca)? {
            roots.add(c.clone()).map_err(|e| TlsError::Pem {
                path: ca.clone(),
                problem: format!("not a usable trust anchor: {e}"),
            })?;
            added.push(c);
        }
    }
    Ok(added)
}

/// The loaded TLS configuration, server and client side.
#[derive(Debug, Clone)]
pub struct TlsContext {
    /// For accepting SIP connections.
    pub server: Arc<ServerConfig>,
    /// For the HTTPS certificate endpoint ([`crate::http::serve_tls`]): the same certificate,
    /// no client certificate asked for. Its clients are verifiers of any domain: one answering
    /// `server`'s request with a certificate from no anchor of ours would fail the handshake.
    pub https: Arc<ServerConfig>,
    /// For opening connections.
    pub client: Arc<ClientConfig>,
    /// Which client certificates authenticate users (`[tls] user_ca`); empty when none do.
    pub users: ClientCertificateValidator,
}

impl TlsContext {
    /// Builds both configurations from PEM files: the domain chain and key, and trust anchors
    /// for servers and peers (`cas`), with no user certificates.
    pub fn load(cert: &Path, key: &Path, cas: &[PathBuf]) -> Result<TlsContext, TlsError> {
        Self::load_with_users(cert, key, cas, &[])
    }

    /// [`TlsContext::load`], and `user_cas`: anchors for users' client certificates
    /// (see [`vouch_auth::client_cert`]).
    pub fn load_with_users(
        cert: &Path,
        key: &Path,
        cas: &[PathBuf],
        user_cas: &[PathBuf],
    ) -> Result<TlsContext, TlsError> {
        let chain = load_certs(cert)?;
        let key = load_key(key)?;
        let mut roots = RootCertStore::empty();
        add_anchors(&mut roots, cas)?;
        // Checked as anchors here, so an unusable one is named by its file.
        let user_anchors = add_anchors(&mut RootCertStore::empty(), user_cas)?;
        Self::from_parts_with_users(chain, key, roots, user_anchors)
    }

    /// Builds both configurations from parsed material. Incoming connections may present a
    /// certificate chaining to `roots` (peer servers) or to `user_anchors` (users); only the
    /// latter authenticate users, and outgoing connections trust `roots` only.
    pub fn from_parts_with_users(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        roots: RootCertStore,
        user_anchors: Vec<CertificateDer<'static>>,
    ) -> Result<TlsContext, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots = Arc::new(roots);
        let mut client_roots = (*roots).clone();
        for a in &user_anchors {
            client_roots
                .add(a.clone())
                .map_err(|e| TlsError::Verifier(format!("user CA not usable: {e}")))?;
        }
        let client_roots = Arc::new(client_roots);
        let verifier = if client_roots.is_empty() {
            // No trust anchor to verify against: asking for a certificate would be pointless.
            WebPkiClientVerifier::no_client_auth()
        } else {
            WebPkiClientVerifier::builder_with_provider(client_roots, provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?
        };
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        let https = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain.clone(), key.clone_key())?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        Ok(TlsContext {
            server: Arc::new(server),
            https: Arc::new(https),
            client: Arc::new(client),
            users: ClientCertificateValidator::new(
                user_anchors.iter().map(|a| a.to_vec()).collect(),
            ),
        })
    }
}

/// The client side alone, for a user agent: verify the server against the PEM files `cas`
/// and, when `identity` gives a certificate chain and its key, present it (a TLS login, see
/// [`vouch_auth::client_cert`]).
pub fn client_config(
    cas: &[PathBuf],
    identity: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    add_anchors(&mut roots, cas)?;
    if roots.is_empty() {
        return Err(TlsError::Verifier("no trust anchor for the server".into()));
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    Ok(match identity {
        Some((cert, key)) => builder.with_client_auth_cert(load_certs(cert)?, load_key(key)?)?,
        None => builder.with_no_client_auth(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let doms = vec!["localhost".to_string()];
        let ips = [IpAddr::from([127, 0, 0, 1])];
        let made = ensure_dev_certs(dir.path(), &doms, &ips, 1_764_000_000).unwrap();
        assert!(made.generated);
        assert!(made.names.contains(&"URI:sip:localhost".to_string()));
        let before = std::fs::read(&made.domain_cert).unwrap();
        let again = ensure_dev_certs(dir.path(), &doms, &ips, 1_764_000_000).unwrap();
        assert!(!again.generated);
        assert_eq!(before, std::fs::read(&again.domain_cert).unwrap());
        assert_eq!(load_certs(&made.domain_cert).unwrap().len(), 2);
        TlsContext::load(&made.domain_cert, &made.domain_key, &[made.ca_cert]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&made.domain_key)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "private key readable by others");
        }
    }

    #[test]
    fn identity_certificate_shares_the_ca_and_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let doms = vec!["example.com".to_string(), "example.org".to_string()];
        let id = ensure_dev_identity(dir.path(), &doms, 1_764_000_000).unwrap();
        assert!(id.generated && id.ca_generated);
        assert_eq!(
            id.names,
            [
                "DNS:example.com",
                "URI:sip:example.com",
                "DNS:example.org",
                "URI:sip:example.org"
            ]
        );
        let ca = std::fs::read(&id.ca_cert).unwrap();
        // The TLS certificates made afterwards reuse the CA, so identity.pem stays valid.
        let tls = ensure_dev_certs(dir.path(), &doms, &[], 1_764_000_000).unwrap();
        assert!(tls.generated);
        assert_eq!(ca, std::fs::read(&tls.ca_cert).unwrap());
        let again = ensure_dev_identity(dir.path(), &doms, 1_764_000_000).unwrap();
        assert!(!again.generated);
        let key = std::fs::read(&id.key).unwrap();
        vouch_auth::identity::RsaSigningKey::from_pem(&key).unwrap();
        let cert = load_certs(&id.cert).unwrap();
        assert_eq!(cert.len(), 1);
        let mut trust = vouch_auth::identity::TrustStore::new();
        trust.add_pem_or_der(&ca).unwrap();
    }

    #[test]
    fn validity_is_calendar_correct() {
        // 2026-11-25T00:00:00Z
        assert_eq!(civil(1_795_564_800 / 86_400), (2026, 11, 25));
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        let mut p = CertificateParams::default();
        set_validity(&mut p, 1_795_564_800);
        assert_eq!(p.not_before, rcgen::date_time_ymd(2026, 11, 24));
        assert_eq!(p.not_after, rcgen::date_time_ymd(2036, 11, 25));
    }

    #[test]
    fn names_the_file_without_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.pem");
        std::fs::write(&p, "nothing").unwrap();
        let e = load_key(&p).unwrap_err().to_string();
        assert!(e.contains("k.pem"), "{e}");
    }
}
