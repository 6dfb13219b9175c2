//! The embedded store (SQLite, bundled): users with their digest HA1 per algorithm and the AoRs
//! each may assert, and registrar bindings, which survive a restart.
//!
//! Passwords are never stored: only H(username:realm:password) for each algorithm (RFC 7616
//! §3.4.2), as Kamailio's `ha1`/`ha1b` columns do.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use vouch_auth::digest::{Algorithm, ha1};

/// Store errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or queried.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `user add` for an AoR that exists.
    #[error("user {0} already exists")]
    UserExists(String),
    /// An AoR that is not `sip:user@domain` or `sips:user@domain`.
    #[error("not an address-of-record (sip:user@domain): {0}")]
    BadAor(String),
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's own AoR, `sip:user@domain`.
    pub aor: String,
    /// Digest username.
    pub username: String,
    /// Digest realm.
    pub realm: String,
    /// AoRs the user may put in From (always includes `aor`).
    pub may_assert: Vec<String>,
    /// H(A1) per algorithm.
    pub ha1: Vec<(Algorithm, String)>,
}

/// One registrar binding (RFC 3261 §10.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The AoR registered.
    pub aor: String,
    /// The Contact URI.
    pub contact: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// q in thousandths.
    pub q: u16,
    /// Call-ID of the REGISTER that last refreshed it.
    pub call_id: String,
    /// Its CSeq.
    pub cseq: u32,
    /// Where the REGISTER came from (`transport:ip:port`), to route back over NAT.
    pub source: String,
}

/// A handle on the SQLite database in the data directory.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    aor TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    realm TEXT NOT NULL,
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    ha1_sha512_256 TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS users_by_credentials ON users(username, realm);
CREATE TABLE IF NOT EXISTS may_assert (
    user_aor TEXT NOT NULL REFERENCES users(aor) ON DELETE CASCADE,
    aor TEXT NOT NULL,
    PRIMARY KEY (user_aor, aor)
);
-- Bumped by every change to users or may_assert (by vouch or by hand), so that a running
-- server notices new accounts with one cheap query.
CREATE TABLE IF NOT EXISTS users_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO users_version (id, version) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS users_inserted AFTER INSERT ON users
    BEGIN UPDATE users_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS users_updated AFTER UPDATE ON users
    BEGIN UPDATE users_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS users_deleted AFTER DELETE ON users
    BEGIN UPDATE users_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS may_assert_inserted AFTER INSERT ON may_assert
    BEGIN UPDATE users_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS may_assert_updated AFTER UPDATE ON may_assert
    BEGIN UPDATE users_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS may_assert_deleted AFTER DELETE ON may_assert
    BEGIN UPDATE users_version SET version = version + 1; END;
CREATE TABLE IF NOT EXISTS bindings (
    aor TEXT NOT NULL,
    contact TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    q INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (aor, contact)
);
";

/// Splits `sip:user@domain` into (user, domain), lowercasing the domain.
pub fn split_aor(aor: &str) -> Result<(String, String), StoreError> {
    let rest = aor
        .strip_prefix("sip:")
        .or_else(|| aor.strip_prefix("sips:"))
        .ok_or_else(|| StoreError::BadAor(aor.to_string()))?;
    match rest.split_once('@') {
        Some((u, d))
            if !u.is_empty()
                && !d.is_empty()
                && !d.contains([';', '?', ':', '@'])
                && !u.contains([';', '?', ':']) =>
        {
            Ok((u.to_string(), d.to_ascii_lowercase()))
        }
        _ => Err(StoreError::BadAor(aor.to_string())),
    }
}

impl Store {
    /// Opens (creating) `DIR/vouch.sqlite3`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("vouch.sqlite3");
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;",
        )
        .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Store { conn, path })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Adds a user; the realm defaults to the AoR's domain, the username to its user part.
    pub fn add_user(
        &mut self,
        aor: &str,
        password: &str,
        realm: Option<&str>,
        may_assert: &[String],
    ) -> Result<User, StoreError> {
        let (username, domain) = split_aor(aor)?;
        let aor = format!("sip:{username}@{domain}");
        let realm = realm.map_or(domain, str::to_string);
        for a in may_assert {
            split_aor(a)?;
        }
        let h: Vec<(Algorithm, String)> =
            [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256]
                .into_iter()
                .map(|a| (a, ha1(a, &username, &realm, password)))
                .collect();
        let tx = self
            .conn
            .transaction()
            .map_err(|source| StoreError::Sqlite {
                path: self.path.clone(),
                source,
            })?;
        let exists: Option<String> = tx
            .query_row("SELECT aor FROM users WHERE aor = ?1", [&aor], |r| r.get(0))
            .optional()
            .map_err(|source| StoreError::Sqlite {
                path: self.path.clone(),
                source,
            })?;
        if exists.is_some() {
            return Err(StoreError::UserExists(aor));
        }
        let sql_err = |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        tx.execute(
            "INSERT INTO users (aor, username, realm, ha1_md5, ha1_sha256, ha1_sha512_256) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![aor, username, realm, h[0].1, h[1].1, h[2].1],
        )
        .map_err(sql_err)?;
        let mut asserted = vec![aor.clone()];
        asserted.extend(may_assert.iter().cloned());
        for a in &asserted {
            tx.execute(
                "INSERT OR IGNORE INTO may_assert (user_aor, aor) VALUES (?1, ?2)",
                params![aor, a],
            )
            .map_err(sql_err)?;
        }
        tx.commit().map_err(sql_err)?;
        asserted.sort();
        asserted.dedup();
        Ok(User {
            aor,
            username,
            realm,
            may_assert: asserted,
            ha1: h,
        })
    }

    /// Removes a user; returns whether one existed.
    pub fn remove_user(&mut self, aor: &str) -> Result<bool, StoreError> {
        let (u, d) = split_aor(aor)?;
        let n = self
            .conn
            .execute("DELETE FROM users WHERE aor = ?1", [format!("sip:{u}@{d}")])
            .map_err(self.err())?;
        Ok(n > 0)
    }

    /// All users, ordered by AoR.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT aor, username, realm, ha1_md5, ha1_sha256, ha1_sha512_256 FROM users ORDER BY aor")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(User {
                    aor: r.get(0)?,
                    username: r.get(1)?,
                    realm: r.get(2)?,
                    may_assert: Vec::new(),
                    ha1: vec![
                        (Algorithm::Md5, r.get(3)?),
                        (Algorithm::Sha256, r.get(4)?),
                        (Algorithm::Sha512_256, r.get(5)?),
                    ],
                })
            })
            .map_err(self.err())?;
        let mut users = rows.collect::<Result<Vec<_>, _>>().map_err(self.err())?;
        let mut stmt = self
            .conn
            .prepare("SELECT aor FROM may_assert WHERE user_aor = ?1 ORDER BY aor")
            .map_err(self.err())?;
        for u in &mut users {
            u.may_assert = stmt
                .query_map([&u.aor], |r| r.get(0))
                .map_err(self.err())?
                .collect::<Result<_, _>>()
                .map_err(self.err())?;
        }
        Ok(users)
    }

    /// A number that changes whenever a user is added, removed or changed (by any process):
    /// compare it with an earlier value to know whether [`Store::users`] must be read again.
    pub fn users_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT version FROM users_version WHERE id = 1", [], |r| {
                r.get(0)
            })
            .map_err(self.err())
    }

    /// Replaces every binding of `aor` with `bindings` (the registrar's view after a REGISTER).
    pub fn save_bindings(&mut self, aor: &str, bindings: &[Binding]) -> Result<(), StoreError> {
        self.save_bindings_of(&[(aor, bindings)])
    }

    /// As [`Store::save_bindings`] for several AoRs in one transaction (one commit, one WAL
    /// write, however many REGISTERs queued up).
    pub fn save_bindings_of(&mut self, changes: &[(&str, &[Binding])]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql_err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql_err)?;
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM bindings WHERE aor = ?1")
                .map_err(sql_err)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO bindings (aor, contact, expires_at, q, call_id, cseq, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sql_err)?;
            for (aor, bindings) in changes {
                delete.execute([aor]).map_err(sql_err)?;
                for b in *bindings {
                    insert
                        .execute(params![
                            b.aor,
                            b.contact,
                            b.expires_at,
                            b.q,
                            b.call_id,
                            b.cseq,
                            b.source
                        ])
                        .map_err(sql_err)?;
                }
            }
        }
        tx.commit().map_err(sql_err)
    }

    /// Every binding not expired at `now` (Unix seconds); expired ones are deleted.
    pub fn load_bindings(&mut self, now: i64) -> Result<Vec<Binding>, StoreError> {
        self.conn
            .execute("DELETE FROM bindings WHERE expires_at <= ?1", [now])
            .map_err(self.err())?;
        let mut stmt = self
            .conn
            .prepare("SELECT aor, contact, expires_at, q, call_id, cseq, source FROM bindings ORDER BY aor, q DESC, contact")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Binding {
                    aor: r.get(0)?,
                    contact: r.get(1)?,
                    expires_at: r.get(2)?,
                    q: r.get(3)?,
                    call_id: r.get(4)?,
                    cseq: r.get(5)?,
                    source: r.get(6)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_round_trip_and_refuse_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let u = s
            .add_user(
                "sip:alice@Atlanta.example.com",
                "secret",
                None,
                &["sip:sales@atlanta.example.com".into()],
            )
            .unwrap();
        assert_eq!(u.realm, "atlanta.example.com");
        assert_eq!(
            u.ha1[0].1,
            ha1(Algorithm::Md5, "alice", "atlanta.example.com", "secret")
        );
        assert!(matches!(
            s.add_user("sip:alice@atlanta.example.com", "x", None, &[]),
            Err(StoreError::UserExists(_))
        ));
        assert!(matches!(
            s.add_user("alice", "x", None, &[]),
            Err(StoreError::BadAor(_))
        ));
        drop(s);
        let mut s = Store::open(dir.path()).unwrap();
        let users = s.users().unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(
            users[0].may_assert,
            vec![
                "sip:alice@atlanta.example.com",
                "sip:sales@atlanta.example.com"
            ]
        );
        assert!(s.remove_user("sip:alice@atlanta.example.com").unwrap());
        assert!(s.users().unwrap().is_empty());
    }

    #[test]
    fn users_version_changes_with_users_seen_from_another_connection() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = Store::open(dir.path()).unwrap();
        let reader = Store::open(dir.path()).unwrap();
        let v0 = reader.users_version().unwrap();
        writer
            .add_user("sip:alice@example.com", "pw", None, &[])
            .unwrap();
        let v1 = reader.users_version().unwrap();
        assert_ne!(v0, v1);
        // Bindings are not users.
        writer
            .save_bindings(
                "sip:alice@example.com",
                &[Binding {
                    aor: "sip:alice@example.com".into(),
                    contact: "sip:alice@127.0.0.1".into(),
                    expires_at: 100,
                    q: 1000,
                    call_id: "c".into(),
                    cseq: 1,
                    source: "udp:127.0.0.1:5060".into(),
                }],
            )
            .unwrap();
        assert_eq!(reader.users_version().unwrap(), v1);
        // Removing one user and adding another leaves the count and the largest rowid as
        // they were; the version still moves.
        writer.remove_user("sip:alice@example.com").unwrap();
        writer
            .add_user("sip:bob@example.com", "pw", None, &[])
            .unwrap();
        let v2 = reader.users_version().unwrap();
        assert_ne!(v1, v2);
    }

    #[test]
    fn bindings_survive_reopen_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let b = |contact: &str, exp| Binding {
            aor: "sip:bob@biloxi.example.com".into(),
            contact: contact.into(),
            expires_at: exp,
            q: 1000,
            call_id: "c".into(),
            cseq: 1,
            source: "udp:127.0.0.1:5070".into(),
        };
        {
            let mut s = Store::open(dir.path()).unwrap();
            s.save_bindings(
                "sip:bob@biloxi.example.com",
                &[
                    b("sip:bob@127.0.0.1:5070", 100),
                    b("sip:bob@127.0.0.1:5071", 200),
                ],
            )
            .unwrap();
        }
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.load_bindings(150).unwrap(),
            vec![b("sip:bob@127.0.0.1:5071", 200)]
        );
        assert!(s.load_bindings(300).unwrap().is_empty());
    }

    #[test]
    fn several_aors_saved_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let b = |aor: &str| Binding {
            aor: aor.into(),
            contact: format!("{aor};x"),
            expires_at: 100,
            q: 1000,
            call_id: "c".into(),
            cseq: 1,
            source: "udp:127.0.0.1:5070".into(),
        };
        let (a1, a2) = ([b("sip:a@x")], [b("sip:b@x")]);
        s.save_bindings_of(&[("sip:a@x", &a1), ("sip:b@x", &a2)])
            .unwrap();
        assert_eq!(s.load_bindings(0).unwrap().len(), 2);
        s.save_bindings_of(&[("sip:a@x", &[])]).unwrap();
        assert_eq!(s.load_bindings(0).unwrap(), vec![b("sip:b@x")]);
    }
}
