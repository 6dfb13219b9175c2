//! `vouch proxy`: runs the registrar and proxy. With no configuration it is a development
//! server for `localhost` on 127.0.0.1 (UDP and TCP 5060, TLS 5061) keeping its data, and a
//! generated development CA and domain certificate, in `./vouch-data`. Digest
//! authentication is on unless `[auth] enabled = false`: accounts come from `vouch user add`
//! (picked up by a running proxy within seconds). With it, requests it admitted are signed
//! (RFC 4474 Identity, `[identity]`) with the domain's RSA key, generated with a certificate
//! from the development CA on first run unless configured, and the certificate is served over
//! HTTP at the Identity-Info URL.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::ValueEnum;
use tracing::info;
use tracing_subscriber::EnvFilter;
use vouch::config::transport_name;
use vouch::identity::IdentityMaterial;
use vouch::tls::{TlsContext, ensure_dev_certs, ensure_dev_identity};
use vouch::{Config, Server};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (TOML; see examples/vouch.toml). Without one: domain localhost on
    /// 127.0.0.1 UDP/TCP 5060 and TLS 5061, data in ./vouch-data.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Log filter in RUST_LOG syntax (`info`, `debug`, `vouch=debug,warn`). Default: the
    /// RUST_LOG variable, else `info`.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
}

/// Installs the global tracing subscriber; logs go to standard error.
pub fn init_logging(format: LogFormat, level: Option<&str>) -> Result<()> {
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).with_context(|| format!("invalid --log-level {l:?}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let r = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    r.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

pub fn run(args: &Args) -> Result<()> {
    init_logging(args.log_format, args.log_level.as_deref())?;
    let config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let tls = load_tls(&config)?;
    let identity = load_identity(&config)?;
    // One thread: the engine is one event loop anyway, and with socket tasks on other worker
    // threads every datagram cost a cross-thread wake-up (the largest cost in a perf profile
    // under load). SQLite writes still go to the blocking pool. bench/proxy_load.sh: CPU per
    // call 0.268 -> 0.216 ms at 1,000 calls/s.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let mut signals = Signals::install()?;
        let mut server = Server::start_with_identity(&config, tls, identity).await?;
        let listening: Vec<String> = server
            .local_addrs()
            .iter()
            .map(|(t, a)| format!("{}:{a}", transport_name(*t)))
            .collect();
        let auth = if config.auth.enabled {
            format!(
                "digest authentication on ({})",
                config.auth.algorithms.join(", ")
            )
        } else {
            "digest authentication OFF".to_string()
        };
        // Before the identity part: tests read the certificate URL at the end of the line.
        let metrics = match server.metrics_addr() {
            Some(a) => format!("; metrics at http://{a}{}", vouch::metrics::PATH),
            None => String::new(),
        };
        let identity = match server.identity_cert_url() {
            Some(url) => format!(
                "; identity signing on ({}), certificate at {url}",
                config.identity.alg.token()
            ),
            None => "; identity signing off".to_string(),
        };
        println!(
            "vouch proxy ready: domains {} listening on {} (data in {}; {auth}{metrics}{identity})",
            config.domains.join(", "),
            listening.join(" "),
            config.data_dir.display()
        );
        let failure = tokio::select! {
            r = signals.wait() => {
                r?;
                None
            }
            f = server.engine_failure() => Some(f),
        };
        info!("shutting down");
        server.shutdown().await;
        if let Some(f) = failure {
            anyhow::bail!("the engine failed and vouch stopped: {f}");
        }
        info!("stopped");
        Ok::<(), anyhow::Error>(())
    })
}

/// Loads the configured certificate, or makes (first run) and loads the development ones when
/// a TLS listener needs a certificate and none is configured.
fn load_tls(config: &Config) -> Result<Option<TlsContext>> {
    if let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) {
        return Ok(Some(TlsContext::load_with_users(
            cert,
            key,
            &config.tls.ca,
            &config.tls.user_ca,
        )?));
    }
    if !config.wants_tls() {
        return Ok(None);
    }
    // Name every specific listening address too, so a peer reaching vouch by address (the
    // engine gives the driver addresses, not names) can verify the certificate; and the
    // HTTPS certificate endpoint's, which the default Identity-Info URL names.
    let mut ips: Vec<IpAddr> = config
        .listen
        .iter()
        .map(|l| l.addr.ip())
        .chain(config.identity.https_addr().map(|a| a.ip()))
        .filter(|ip| !ip.is_unspecified())
        .collect();
    ips.sort();
    ips.dedup();
    let made = ensure_dev_certs(
        &config.data_dir,
        &config.domains,
        &ips,
        vouch::server::wall_unix(),
    )?;
    if made.generated {
        println!("generated a development CA and domain certificate (not for production):");
        println!("  CA certificate      {}", made.ca_cert.display());
        println!("  CA private key      {}", made.ca_key.display());
        println!(
            "  domain certificate  {} ({})",
            made.domain_cert.display(),
            made.names.join(", ")
        );
        println!("  domain private key  {}", made.domain_key.display());
        println!("  trust the CA in clients with: {}", made.ca_cert.display());
    } else {
        info!(cert = %made.domain_cert.display(), ca = %made.ca_cert.display(), "using the development certificates");
    }
    let cas = if config.tls.ca.is_empty() {
        vec![made.ca_cert.clone()]
    } else {
        config.tls.ca.clone()
    };
    Ok(Some(TlsContext::load_with_users(
        &made.domain_cert,
        &made.domain_key,
        &cas,
        &config.tls.user_ca,
    )?))
}

/// The RFC 4474 signing key and certificate when signing is on (`[identity] sign` and
/// `[auth] enabled`): the configured ones, or the development ones (made on first run).
fn load_identity(config: &Config) -> Result<Option<IdentityMaterial>> {
    if !config.identity.sign || !config.auth.enabled {
        return Ok(None);
    }
    if let (Some(key), Some(cert)) = (&config.identity.key, &config.identity.cert) {
        return Ok(Some(IdentityMaterial::load(key, cert)?));
    }
    let made = ensure_dev_identity(
        &config.data_dir,
        &config.domains,
        vouch::server::wall_unix(),
    )?;
    if made.generated {
        println!("generated an RFC 4474 identity key and certificate (not for production):");
        if made.ca_generated {
            println!("  CA certificate        {}", made.ca_cert.display());
        }
        println!(
            "  identity certificate  {} ({}; issued by {})",
            made.cert.display(),
            made.names.join(", "),
            made.ca_cert.display()
        );
        println!("  identity private key  {} (RSA-2048)", made.key.display());
    } else {
        info!(cert = %made.cert.display(), "using the development identity certificate");
    }
    Ok(Some(IdentityMaterial::load(&made.key, &made.cert)?))
}

/// SIGINT and SIGTERM, watched from creation on: the handlers must be in place before
/// "ready" is printed, or a supervisor's early SIGTERM would kill the process uncleanly.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
                term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Returns on the first SIGINT or SIGTERM.
    async fn wait(&mut self) -> Result<()> {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c()
            .await
            .context("cannot watch Ctrl-C")?;
        Ok(())
    }
}
