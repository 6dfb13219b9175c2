//! `vouch user add|list|remove`: the accounts in the store. Only H(A1) per digest algorithm
//! is stored (RFC 7616 §3.4.2), never the password. A running `vouch proxy` on the same data
//! directory notices changes within about two seconds (it polls the store).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Subcommand;
use vouch::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data directory holding the database.
    #[arg(long, global = true, value_name = "DIR", default_value = "vouch-data")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Adds a user.
    Add {
        /// The user's address-of-record, sip:user@domain.
        aor: String,
        /// The password (only its digest hashes are stored).
        #[arg(long)]
        password: String,
        /// Digest realm (default: the AoR's domain).
        #[arg(long)]
        realm: Option<String>,
        /// Another AoR the user may assert as caller identity (repeatable).
        #[arg(long = "may-assert", value_name = "AOR")]
        may_assert: Vec<String>,
    },
    /// Lists the users.
    List,
    /// Removes a user.
    Remove {
        /// The user's address-of-record.
        aor: String,
    },
}

pub fn run(args: &Args) -> Result<()> {
    let mut store = Store::open(&args.data_dir)?;
    match &args.command {
        Command::Add {
            aor,
            password,
            realm,
            may_assert,
        } => {
            if password.is_empty() {
                bail!("the password must not be empty");
            }
            let u = store.add_user(aor, password, realm.as_deref(), may_assert)?;
            println!(
                "added {} (username {}, realm {}, may assert {})",
                u.aor,
                u.username,
                u.realm,
                u.may_assert.join(", ")
            );
        }
        Command::List => {
            let users = store.users()?;
            if users.is_empty() {
                println!("no users in {}", args.data_dir.display());
            }
            for u in users {
                println!(
                    "{}\tusername={}\trealm={}\tmay-assert={}",
                    u.aor,
                    u.username,
                    u.realm,
                    u.may_assert.join(",")
                );
            }
        }
        Command::Remove { aor } => {
            if !store.remove_user(aor)? {
                bail!("no user {aor}");
            }
            println!("removed {aor}");
        }
    }
    Ok(())
}
