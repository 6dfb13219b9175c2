//! The driver's side of digest authentication: the nonce secret file, the engine's
//! [`DigestConfig`] from `[auth]`, the store's users as the engine's accounts, and the
//! operating system's randomness (the engine reads none).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use vouch_proto::UserCredentials;
use vouch_proto::auth::{
    ChallengeScope, DigestConfig, DigestPolicy, DigestUriCheck, NonceSecret, RealmChoice,
};

use crate::config::{AuthConfig, DigestUriSetting, ScopeSetting};
use crate::store::User;

/// Length of the nonce secret, bytes.
pub const SECRET_LEN: usize = 32;

/// Problems setting up digest authentication.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthSetupError {
    /// The secret file could not be read or written.
    #[error("nonce secret {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The secret file does not hold exactly 32 bytes.
    #[error(
        "nonce secret {path}: holds {len} bytes, not {SECRET_LEN} (remove it to have a new one made)"
    )]
    BadLength {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The operating system's random generator failed.
    #[error("the operating system's random generator failed")]
    Random,
    /// The engine refused the configuration.
    #[error(transparent)]
    Policy(#[from] vouch_proto::Error),
}

/// Bytes from the operating system's generator (getrandom via aws-lc-rs).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], AuthSetupError> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| AuthSetupError::Random)?;
    Ok(b)
}

/// A 64-bit seed from the operating system's generator.
pub fn random_seed() -> Result<u64, AuthSetupError> {
    random_bytes::<8>().map(u64::from_le_bytes)
}

/// Reads the 32-byte nonce secret at `path`, or makes one (mode 0600) when there is none.
/// Returns the secret and whether it was made now.
///
/// A new secret is written to a temporary file and linked into place, so two nodes starting
/// at once on a shared directory end up with the same secret, never a half-written one.
pub fn load_or_create_secret(path: &Path) -> Result<([u8; SECRET_LEN], bool), AuthSetupError> {
    let io_err = |source| AuthSetupError::Io {
        path: path.to_path_buf(),
        source,
    };
    match read_secret(path) {
        Ok(s) => return Ok((s, false)),
        Err(AuthSetupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    let secret = random_bytes::<SECRET_LEN>()?;
    let file_name = path.file_name().map_or_else(
        || "nonce.secret".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let write = || -> io::Result<()> {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&tmp)?;
        f.write_all(&secret)?;
        f.sync_all()
    };
    let _ = std::fs::remove_file(&tmp);
    let linked = write().and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok((secret, true)),
        // Another process made it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_secret(path).map(|s| (s, false)),
        Err(e) => Err(io_err(e)),
    }
}

fn read_secret(path: &Path) -> Result<[u8; SECRET_LEN], AuthSetupError> {
    let io_err = |source| AuthSetupError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io_err)?;
    <[u8; SECRET_LEN]>::try_from(bytes.as_slice()).map_err(|_| AuthSetupError::BadLength {
        path: path.to_path_buf(),
        len: bytes.len() as u64,
    })
}

/// True when the file can be read by users other than its owner.
#[cfg(unix)]
pub fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

/// True when the file can be read by users other than its owner.
#[cfg(not(unix))]
pub fn readable_by_others(_path: &Path) -> bool {
    false
}

/// The engine's digest configuration for `[auth]`.
pub fn digest_config(auth: &AuthConfig, secret: [u8; SECRET_LEN], seed: u64) -> DigestConfig {
    let mut d = DigestConfig::new(NonceSecret::new(secret), seed);
    d.algorithms = auth.algorithm_list();
    d.digest_uri_check = match auth.digest_uri {
        DigestUriSetting::Strict => DigestUriCheck::Strict,
        DigestUriSetting::Relaxed => DigestUriCheck::Relaxed,
    };
    // Validated to lie within 1..=MAX_NONCE_LIFETIME_SECS.
    d.nonce_lifetime_secs = i64::try_from(auth.nonce_lifetime_secs).unwrap_or(i64::MAX);
    d.sess = auth.sess;
    d.auth_int = auth.auth_int;
    d.realm = match &auth.realm {
        Some(r) => RealmChoice::Fixed(r.clone()),
        None => RealmChoice::PerDomain,
    };
    d.challenge_in_dialog = auth.challenge_in_dialog;
    d.exempt_methods = auth.exempt_methods.clone();
    d.scope = match auth.scope {
        ScopeSetting::LocalUsers => ChallengeScope::FromLocalUsers,
        ScopeSetting::Everyone => ChallengeScope::Everyone,
    };
    d
}

/// The digest policy for `[auth]`, with its nonce secret read from (or made in) its file and
/// its nonce randomness seeded from the operating system. Returns the policy and whether the
/// secret file was made now.
pub fn policy(auth: &AuthConfig, data_dir: &Path) -> Result<(DigestPolicy, bool), AuthSetupError> {
    let (secret, created) = load_or_create_secret(&auth.secret_path(data_dir))?;
    let policy = DigestPolicy::new(digest_config(auth, secret, random_seed()?))?;
    Ok((policy, created))
}

/// The store's users as the engine's digest accounts.
pub fn credentials(users: &[User]) -> Vec<UserCredentials> {
    users
        .iter()
        .map(|u| UserCredentials {
            username: u.username.clone(),
            realm: u.realm.clone(),
            aor: u.aor.clone(),
            may_assert: u.may_assert.clone(),
            ha1: u.ha1.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn secret_is_made_once_with_owner_only_permissions_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/nonce.secret");
        let (a, made) = load_or_create_secret(&p).unwrap();
        assert!(made);
        assert_ne!(a, [0u8; SECRET_LEN]);
        assert_eq!(std::fs::read(&p).unwrap(), a);
        assert!(!readable_by_others(&p));
        let (b, made) = load_or_create_secret(&p).unwrap();
        assert!(!made);
        assert_eq!(a, b);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_secret_of_the_wrong_length_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nonce.secret");
        std::fs::write(&p, b"short").unwrap();
        let e = load_or_create_secret(&p).unwrap_err();
        assert!(e.to_string().contains("5 bytes"), "{e}");
    }

    #[test]
    fn auth_section_becomes_the_engine_configuration() {
        let c = Config::from_toml(
            "[auth]\nalgorithms = [\"md5\", \"SHA-256\"]\ndigest_uri = \"relaxed\"\nnonce_lifetime_secs = 60\nsess = true\nauth_int = false\nrealm = \"corp\"\nchallenge_in_dialog = true\nexempt_methods = [\"OPTIONS\"]\nscope = \"everyone\"\n",
        )
        .unwrap();
        let d = digest_config(&c.auth, [7; 32], 1);
        use vouch_proto::auth::Algorithm;
        assert_eq!(d.algorithms, vec![Algorithm::Md5, Algorithm::Sha256]);
        assert_eq!(d.digest_uri_check, DigestUriCheck::Relaxed);
        assert_eq!(d.nonce_lifetime_secs, 60);
        assert!(d.sess && !d.auth_int && d.challenge_in_dialog);
        assert_eq!(d.realm, RealmChoice::Fixed("corp".into()));
        assert_eq!(d.exempt_methods, vec!["OPTIONS"]);
        assert_eq!(d.scope, ChallengeScope::Everyone);
        DigestPolicy::new(d).unwrap();

        let d = digest_config(&Config::default().auth, [7; 32], 1);
        assert_eq!(d.algorithms, Algorithm::STRONGEST_FIRST.to_vec());
        assert_eq!(d.digest_uri_check, DigestUriCheck::Strict);
        assert_eq!(d.realm, RealmChoice::PerDomain);
        assert_eq!(d.scope, ChallengeScope::FromLocalUsers);
        assert!(!d.challenge_in_dialog && !d.sess && d.auth_int);
    }
}
