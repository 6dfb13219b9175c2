//! RFC 4474 identity signing in the driver: the domain's RSA key and certificate, loaded from
//! `[identity]` (or the development ones [`crate::tls::ensure_dev_identity`] makes), the URL
//! verifiers fetch the certificate from, and the engine's
//! [`AuthenticationService`](vouch_proto::AuthenticationService) built from them.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use vouch_auth::identity::RsaSigningKey;
use vouch_proto::AuthenticationService;

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
}

/// The signing key and the certificate verifiers fetch.
#[derive(Debug, Clone)]
pub struct IdentityMaterial {
    /// The domain's RSA private key.
    pub key: Arc<RsaSigningKey>,
    /// The leaf certificate, DER (served as `application/pkix-cert`, RFC 4474 §6.1).
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
/// unspecified (0.0.0.0, [::]) `advertised_host`, else the first specific listening IP.
pub fn default_cert_url(config: &Config, http: SocketAddr) -> String {
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
    format!("http://{host}:{}/identity.cer", http.port())
}

fn ip_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The engine's authentication service for `material`, pointing at `cert_url`, with the
/// configured algorithm and methods.
pub fn authentication_service(
    identity: &IdentityConfig,
    material: &IdentityMaterial,
    cert_url: &str,
) -> AuthenticationService {
    let mut svc =
        AuthenticationService::new(material.key.clone(), cert_url).with_alg(identity.alg.into());
    if let Some(m) = &identity.methods {
        svc = svc.with_methods(m.clone());
    }
    svc
}
