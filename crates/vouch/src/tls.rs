//! TLS material for the SIPS transport (RFC 3261 §26.2, RFC 5922 for domain certificates):
//! a development CA and domain certificate generated on first run, PEM loading, and the rustls
//! configurations (aws-lc-rs provider) for accepting and for opening connections.
//!
//! Incoming connections request a client certificate but do not require one (RFC 5923 peers
//! and phones with user certificates send one, most phones none); a certificate that is sent
//! must chain to a configured trust anchor or the handshake fails. Outgoing connections verify
//! the server against the configured trust anchors and present the domain certificate, so two
//! vouch servers authenticate each other (RFC 5922 §7.4 mutual TLS between proxies).

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

/// Makes sure a development CA and a domain certificate exist in `dir`, generating them when
/// any of `ca.pem`, `domain.pem`, `domain.key` is missing. The domain certificate (ECDSA
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
    let issuer = Issuer::new(ca, &ca_key);
    let leaf_cert = leaf.signed_by(&key, &issuer)?;

    write_file(&out.ca_cert, ca_cert.pem().as_bytes(), false)?;
    write_file(&out.ca_key, ca_key.serialize_pem().as_bytes(), true)?;
    let chain = format!("{}{}", leaf_cert.pem(), ca_cert.pem());
    write_file(&out.domain_cert, chain.as_bytes(), false)?;
    write_file(&out.domain_key, key.serialize_pem().as_bytes(), true)?;
    Ok(DevCerts {
        generated: true,
        names,
        ..out
    })
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

/// The loaded TLS configuration, server and client side.
#[derive(Debug, Clone)]
pub struct TlsContext {
    /// For accepting connections.
    pub server: Arc<ServerConfig>,
    /// For opening connections.
    pub client: Arc<ClientConfig>,
}

impl TlsContext {
    /// Builds both configurations from PEM files: the domain chain and key, and trust anchors.
    pub fn load(cert: &Path, key: &Path, cas: &[PathBuf]) -> Result<TlsContext, TlsError> {
        let chain = load_certs(cert)?;
        let key = load_key(key)?;
        let mut roots = RootCertStore::empty();
        for ca in cas {
            for c in load_certs(ca)? {
                roots.add(c).map_err(|e| TlsError::Pem {
                    path: ca.clone(),
                    problem: format!("not a usable trust anchor: {e}"),
                })?;
            }
        }
        Self::from_parts(chain, key, roots)
    }

    /// Builds both configurations from parsed material.
    pub fn from_parts(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        roots: RootCertStore,
    ) -> Result<TlsContext, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots = Arc::new(roots);
        let verifier = if roots.is_empty() {
            // No trust anchor to verify against: asking for a certificate would be pointless.
            WebPkiClientVerifier::no_client_auth()
        } else {
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?
        };
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        Ok(TlsContext {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
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
