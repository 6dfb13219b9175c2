//! Fetching the certificate an `Identity-Info` header points at (RFC 4474 §6.2 step 1, §13.5):
//! http and https only, a timeout, a size limit, and a cache with a TTL plus a negative cache
//! so an unreachable server is not asked again for every request. Failures are what a verifier
//! answers 436 Bad Identity-Info for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a certificate could not be fetched (each is a 436 Bad Identity-Info).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Not an http or https URL (RFC 4474 §13.5: `file:`, `ftp:` … are refused).
    #[error("unsupported Identity-Info scheme in {0}")]
    UnsupportedScheme(String),
    /// No answer within the timeout.
    #[error("timed out fetching {0}")]
    Timeout(String),
    /// Connection or HTTP failure.
    #[error("fetching {url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The body is larger than the limit.
    #[error("certificate at {0} is larger than the limit")]
    TooLarge(String),
    /// The body is neither a DER nor a PEM certificate.
    #[error("no certificate at {0}")]
    NotACertificate(String),
}

/// A fetched certificate chain: the signer first, then any intermediates sent with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedChain {
    /// The signer certificate (DER).
    pub end_entity: Vec<u8>,
    /// Further certificates of a PEM bundle (DER).
    pub intermediates: Vec<Vec<u8>>,
}

/// Fetcher limits.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Largest body accepted.
    pub max_size: usize,
    /// How long a fetched certificate is reused.
    pub ttl: Duration,
    /// How long a failure is remembered.
    pub negative_ttl: Duration,
    /// Extra trust anchors (PEM) for https fetches, e.g. the development CA.
    pub https_roots_pem: Vec<u8>,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            timeout: Duration::from_secs(3),
            max_size: 64 * 1024,
            ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(30),
            https_roots_pem: Vec::new(),
        }
    }
}

type CacheEntry = (Instant, Result<Arc<FetchedChain>, FetchError>);

/// An Identity-Info certificate fetcher with its cache. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CertFetcher {
    client: reqwest::Client,
    config: Arc<FetchConfig>,
    cache: Arc<Mutex<HashMap<String, CacheEntry>>>,
}

impl CertFetcher {
    /// A fetcher; https uses the configured roots (no system roots: identity trust is explicit).
    pub fn new(config: FetchConfig) -> Result<Self, FetchError> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&config.https_roots_pem).flatten() {
            let _ = roots.add(c);
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| FetchError::Http {
                url: String::new(),
                reason: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| FetchError::Http {
                url: String::new(),
                reason: e.to_string(),
            })?;
        Ok(CertFetcher {
            client,
            config: Arc::new(config),
            cache: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The certificate chain at `url`, from the cache when fresh.
    pub async fn fetch(&self, url: &str) -> Result<Arc<FetchedChain>, FetchError> {
        let now = Instant::now();
        if let Ok(cache) = self.cache.lock()
            && let Some((at, result)) = cache.get(url)
        {
            let ttl = if result.is_ok() {
                self.config.ttl
            } else {
                self.config.negative_ttl
            };
            if now.duration_since(*at) < ttl {
                return result.clone();
            }
        }
        let result = self.fetch_uncached(url).await.map(Arc::new);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(url.to_string(), (now, result.clone()));
        }
        result
    }

    async fn fetch_uncached(&self, url: &str) -> Result<FetchedChain, FetchError> {
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(FetchError::UnsupportedScheme(url.to_string()));
        }
        let http = |e: reqwest::Error| {
            if e.is_timeout() {
                FetchError::Timeout(url.to_string())
            } else {
                FetchError::Http {
                    url: url.to_string(),
                    reason: e.to_string(),
                }
            }
        };
        let mut resp = self.client.get(url).send().await.map_err(http)?;
        if !resp.status().is_success() {
            return Err(FetchError::Http {
                url: url.to_string(),
                reason: format!("HTTP status {}", resp.status()),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(http)? {
            if body.len() + chunk.len() > self.config.max_size {
                return Err(FetchError::TooLarge(url.to_string()));
            }
            body.extend_from_slice(&chunk);
        }
        parse_chain(&body).ok_or_else(|| FetchError::NotACertificate(url.to_string()))
    }
}

/// Reads a DER certificate or a PEM bundle (signer first).
pub fn parse_chain(body: &[u8]) -> Option<FetchedChain> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    if body.first() == Some(&0x30) {
        return Some(FetchedChain {
            end_entity: body.to_vec(),
            intermediates: Vec::new(),
        });
    }
    let mut certs = CertificateDer::pem_slice_iter(body)
        .filter_map(Result::ok)
        .map(|c| c.as_ref().to_vec());
    let end_entity = certs.next()?;
    Some(FetchedChain {
        end_entity,
        intermediates: certs.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn serve_once(body: Vec<u8>, delay: Duration) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    tokio::time::sleep(delay).await;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-cert\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&body).await;
                });
            }
        });
        format!("http://{addr}/cert.der")
    }

    fn der() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec!["atlanta.example.com".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .to_vec()
    }

    #[tokio::test]
    async fn fetches_and_caches_der() {
        let cert = der();
        let url = serve_once(cert.clone(), Duration::ZERO).await;
        let f = CertFetcher::new(FetchConfig::default()).unwrap();
        assert_eq!(f.fetch(&url).await.unwrap().end_entity, cert);
        assert_eq!(f.fetch(&url).await.unwrap().end_entity, cert);
    }

    #[tokio::test]
    async fn refuses_other_schemes_large_bodies_and_slow_servers() {
        let f = CertFetcher::new(FetchConfig {
            timeout: Duration::from_millis(300),
            max_size: 100,
            ..FetchConfig::default()
        })
        .unwrap();
        assert!(matches!(
            f.fetch("file:///etc/passwd").await,
            Err(FetchError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            f.fetch("ftp://example.com/c").await,
            Err(FetchError::UnsupportedScheme(_))
        ));
        let big = serve_once(der(), Duration::ZERO).await;
        assert!(matches!(f.fetch(&big).await, Err(FetchError::TooLarge(_))));
        let slow = serve_once(der(), Duration::from_secs(5)).await;
        let started = Instant::now();
        assert!(matches!(f.fetch(&slow).await, Err(FetchError::Timeout(_))));
        assert!(started.elapsed() < Duration::from_secs(2));
        let junk = serve_once(b"hello".to_vec(), Duration::ZERO).await;
        let f = CertFetcher::new(FetchConfig::default()).unwrap();
        assert!(matches!(
            f.fetch(&junk).await,
            Err(FetchError::NotACertificate(_))
        ));
    }
}
