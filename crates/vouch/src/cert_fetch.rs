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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A certificate server on `listener` that counts the requests it reads: request n gets
    /// `answers[n]` (the last one once they run out), a status and a body, after `delay`.
    fn serve_on(
        listener: tokio::net::TcpListener,
        answers: Vec<(u16, Vec<u8>)>,
        delay: Duration,
    ) -> (String, Arc<AtomicUsize>) {
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (answers, hits) = (answers.clone(), counted.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    if !matches!(s.read(&mut buf).await, Ok(n) if n > 0) {
                        return;
                    }
                    let n = hits.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = &answers[n.min(answers.len() - 1)];
                    tokio::time::sleep(delay).await;
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/pkix-cert\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(body).await;
                });
            }
        });
        (format!("http://{addr}/cert.der"), hits)
    }

    async fn serve(answers: Vec<(u16, Vec<u8>)>, delay: Duration) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        serve_on(listener, answers, delay)
    }

    async fn serve_once(body: Vec<u8>, delay: Duration) -> String {
        serve(vec![(200, body)], delay).await.0
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

    fn short_ttls(ttl: Duration, negative_ttl: Duration) -> FetchConfig {
        FetchConfig {
            ttl,
            negative_ttl,
            ..FetchConfig::default()
        }
    }

    #[tokio::test]
    async fn fetches_and_caches_der() {
        let cert = der();
        let (url, hits) = serve(vec![(200, cert.clone())], Duration::ZERO).await;
        let f = CertFetcher::new(FetchConfig::default()).unwrap();
        assert_eq!(f.fetch(&url).await.unwrap().end_entity, cert);
        assert_eq!(f.fetch(&url).await.unwrap().end_entity, cert);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "the second came from the cache"
        );
        // Clones share the cache (the driver hands one to each fetch task).
        assert_eq!(f.clone().fetch(&url).await.unwrap().end_entity, cert);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_certificate_is_fetched_again_once_its_ttl_ran_out() {
        let (old, new) = (der(), der());
        let (url, hits) = serve(vec![(200, old.clone()), (200, new.clone())], Duration::ZERO).await;
        let f = CertFetcher::new(short_ttls(Duration::from_millis(300), Duration::ZERO)).unwrap();
        assert_eq!(f.fetch(&url).await.unwrap().end_entity, old);
        assert_eq!(f.fetch(&url).await.unwrap().end_entity, old);
        assert_eq!(hits.load(Ordering::SeqCst), 1, "within the TTL: cached");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(f.fetch(&url).await.unwrap().end_entity, new);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            2,
            "after the TTL: fetched again"
        );
    }

    #[tokio::test]
    async fn a_404_is_cached_for_the_negative_ttl_then_retried() {
        let cert = der();
        let (url, hits) = serve(vec![(404, Vec::new()), (200, cert.clone())], Duration::ZERO).await;
        let f = CertFetcher::new(short_ttls(
            Duration::from_secs(3600),
            Duration::from_millis(300),
        ))
        .unwrap();
        let first = f.fetch(&url).await.unwrap_err();
        assert!(
            matches!(&first, FetchError::Http { reason, .. } if reason.contains("404")),
            "{first:?}"
        );
        // Within the negative TTL the server (which would now answer 200) is not asked.
        assert_eq!(f.fetch(&url).await.unwrap_err(), first);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "the failure came from the cache"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(f.fetch(&url).await.unwrap().end_entity, cert);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            2,
            "retried after the negative TTL"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_cached_for_the_negative_ttl_then_retried() {
        // A port nobody listens on: the connection is refused.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = format!("http://{addr}/cert.der");
        let f = CertFetcher::new(short_ttls(
            Duration::from_secs(3600),
            Duration::from_millis(300),
        ))
        .unwrap();
        let first = f.fetch(&url).await.unwrap_err();
        assert!(matches!(first, FetchError::Http { .. }), "{first:?}");
        // The server comes up on that port: within the negative TTL it is still not asked.
        let cert = der();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let (served, hits) = serve_on(listener, vec![(200, cert.clone())], Duration::ZERO);
        assert_eq!(served, url);
        assert_eq!(f.fetch(&url).await.unwrap_err(), first);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "the failure came from the cache"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(f.fetch(&url).await.unwrap().end_entity, cert);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "retried after the negative TTL"
        );
    }

    #[test]
    fn default_ttls_are_an_hour_and_thirty_seconds() {
        let c = FetchConfig::default();
        assert_eq!(c.ttl, Duration::from_secs(3600));
        assert_eq!(c.negative_ttl, Duration::from_secs(30));
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
