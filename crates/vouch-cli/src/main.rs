//! The `vouch` command: `parse` today; `proxy`, `ua`, `demo`, `identity` and `user` as the
//! engine grows.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod parse;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Parse(args) => parse::run(&args),
    }
}
