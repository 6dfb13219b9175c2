//! The `vouch` command: `parse`, `proxy` and `user`; `ua`, `demo` and `identity` as the
//! engine grows.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;
mod identity;
mod parse;
mod proxy;
mod ua;
mod ua_text;
mod user;

#[derive(Debug, Parser)]
#[command(name = "vouch", version, about = "SIP security server and toolkit")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse SIP messages and print each header with its typed reading.
    ///
    /// Exit status: 0 when every file is a valid message, 1 when any is invalid, 2 on usage
    /// or I/O errors.
    Parse(parse::Args),
    /// Run the registrar and proxy until SIGINT or SIGTERM.
    ///
    /// Without --config: domain localhost on 127.0.0.1 (UDP and TCP 5060, TLS 5061), data
    /// and a generated development CA in ./vouch-data. Exit status 0 after a clean shutdown,
    /// 1 on a configuration or start-up error.
    Proxy(proxy::Args),
    /// Manage user accounts (add, list, remove).
    User(user::Args),
    /// RFC 4474 identity: sign a request, or verify its Identity header.
    Identity(identity::Args),
    /// Runs the identity usage BCP trapezoid on loopback and prints its ladder.
    Demo(demo::Args),
    /// A user agent: register, call or answer against any SIP server.
    Ua(Box<ua::Args>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Parse(args) => return parse::run(&args),
        Command::Identity(args) => return identity::run(&args),
        Command::Proxy(args) => proxy::run(&args),
        Command::User(args) => user::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Ua(args) => ua::run(&args),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole chain: "cannot listen on udp:…: Address in use".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
