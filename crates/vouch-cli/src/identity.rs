//! `vouch identity sign|verify`: the RFC 4474 authentication and verification services as
//! offline tools.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::json;
use vouch::cert_fetch::{CertFetcher, FetchConfig, parse_chain};
use vouch_auth::identity::{
    IdentityAlg, IdentityError, RsaSigningKey, TrustStore, Verifier, VerifierConfig, add_identity,
    check_before_fetch,
};
use vouch_msg::Message;
use vouch_msg::headers::date::format_sip_date;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Sign a request as an authentication service and print it with Identity and
    /// Identity-Info (a Date is set to now unless --keep-date keeps the one present).
    Sign(SignArgs),
    /// Verify a request's Identity. Exit 0 when verified, 1 otherwise (naming the code a
    /// verifier would answer: 428, 436, 437, 438 or 403), 2 on usage or I/O errors.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
struct SignArgs {
    /// The domain's RSA private key (PEM, PKCS#1 or PKCS#8).
    #[arg(long, value_name = "KEY.pem")]
    key: PathBuf,
    /// Where verifiers fetch the domain certificate (Identity-Info).
    #[arg(long, value_name = "URL")]
    cert_url: String,
    /// Signature algorithm.
    #[arg(long, value_enum, default_value = "rsa-sha1")]
    alg: AlgArg,
    /// Keep the message's Date instead of setting it to now (the message must have one).
    #[arg(long)]
    keep_date: bool,
    /// The request (`-` for stdin).
    #[arg(value_name = "MSG")]
    msg: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AlgArg {
    #[value(name = "rsa-sha1")]
    RsaSha1,
    #[value(name = "rsa-sha256")]
    RsaSha256,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The signer certificate (PEM or DER), used instead of fetching Identity-Info and trusted
    /// as given.
    #[arg(
        long,
        value_name = "CERT",
        conflicts_with = "trust",
        required_unless_present = "trust"
    )]
    cert: Option<PathBuf>,
    /// Trust anchors (PEM): fetch the Identity-Info certificate and validate its chain.
    #[arg(long, value_name = "CA.pem")]
    trust: Option<PathBuf>,
    /// Skip the Date window and certificate validity checks (for old published examples).
    #[arg(long)]
    no_date_check: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// The request (`-` for stdin).
    #[arg(value_name = "MSG")]
    msg: PathBuf,
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::stdin()
            .read_to_end(&mut v)
            .context("reading stdin")?;
        Ok(v)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn parse_message(path: &Path) -> anyhow::Result<Message> {
    Message::parse(read(path)?)
        .map_err(|e| anyhow::anyhow!("{}: not a valid SIP message: {e}", path.display()))
}

pub fn run(args: &Args) -> ExitCode {
    let result = match &args.command {
        Command::Sign(a) => sign(a).map(|()| ExitCode::SUCCESS),
        Command::Verify(a) => verify(a),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    })
}

fn sign(a: &SignArgs) -> anyhow::Result<()> {
    let key = RsaSigningKey::from_pem(&read(&a.key)?)
        .with_context(|| format!("{}: not an RSA private key", a.key.display()))?;
    let msg = parse_message(&a.msg)?;
    if !msg.is_request() {
        bail!("{}: only requests are signed", a.msg.display());
    }
    let msg = if a.keep_date {
        if msg.header(vouch_msg::HeaderName::Date).is_none() {
            bail!("--keep-date: the message has no Date");
        }
        msg
    } else {
        let date = format_sip_date(now_unix()).context("clock out of range")?;
        let mut b = msg.edit();
        b.replace("Date", &date);
        b.build().map_err(|e| anyhow::anyhow!("adding Date: {e}"))?
    };
    let alg = match a.alg {
        AlgArg::RsaSha1 => IdentityAlg::RsaSha1,
        AlgArg::RsaSha256 => IdentityAlg::RsaSha256,
    };
    let signed = add_identity(&msg, &key, alg, &a.cert_url).map_err(|e| anyhow::anyhow!("{e}"))?;
    use std::io::Write;
    std::io::stdout()
        .write_all(signed.as_bytes())
        .context("writing stdout")?;
    Ok(())
}

fn verify(a: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let msg = parse_message(&a.msg)?;
    let config = VerifierConfig {
        check_date: !a.no_date_check,
        check_certificate_time: !a.no_date_check,
        ..VerifierConfig::default()
    };
    let mut trust = TrustStore::new();
    let chain = match (&a.cert, &a.trust) {
        (Some(cert), _) => {
            let data = read(cert)?;
            let chain = parse_chain(&data)
                .with_context(|| format!("{}: no certificate", cert.display()))?;
            trust
                .add_pem_or_der(&chain.end_entity)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(chain)
        }
        (None, Some(anchors)) => {
            let data = read(anchors)?;
            let n = trust
                .add_pem_or_der(&data)
                .map_err(|e| anyhow::anyhow!("{}: {e}", anchors.display()))?;
            if n == 0 {
                bail!("{}: no certificates", anchors.display());
            }
            // What needs no certificate is refused first (428 before 436, a malformed
            // Identity 438), and without a fetch.
            check_before_fetch(&msg).and_then(|read| fetch_identity_info(read.cert_url(), &data))
        }
        (None, None) => bail!("give --cert or --trust"),
    };
    let verdict = chain.and_then(|chain| {
        Verifier::new(config, trust).verify(
            &msg,
            &chain.end_entity,
            &chain.intermediates,
            now_unix(),
        )
    });
    match verdict {
        Ok(v) => {
            if a.json {
                println!(
                    "{}",
                    json!({"verified": true, "aor": v.aor(), "signer_domain": v.signer_domain(), "alg": v.alg().token()})
                );
            } else {
                println!(
                    "verified: {} vouched for by {} ({})",
                    v.aor(),
                    v.signer_domain(),
                    v.alg().token()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if a.json {
                println!(
                    "{}",
                    json!({"verified": false, "status": e.status(), "reason": e.to_string()})
                );
            } else {
                println!("not verified: {} ({e})", e.status());
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// Fetches the Identity-Info certificate at `url`; a failure is 436 as a verifier would answer.
fn fetch_identity_info(
    url: &str,
    roots_pem: &[u8],
) -> Result<vouch::cert_fetch::FetchedChain, IdentityError> {
    let fetcher = CertFetcher::new(FetchConfig {
        https_roots_pem: roots_pem.to_vec(),
        ..FetchConfig::default()
    })
    .map_err(|e| IdentityError::Fetch(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| IdentityError::Fetch(e.to_string()))?;
    rt.block_on(fetcher.fetch(url))
        .map(|c| (*c).clone())
        .map_err(|e| IdentityError::Fetch(e.to_string()))
}
