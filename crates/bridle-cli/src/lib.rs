//! The `bridle` command line. `main.rs` only calls [`run`].

mod audit;
mod check;
mod demo;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "bridle",
    version,
    about = "Identity and governance record for AI agents, and the control point that enforces it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decide one action against a manifest, offline (no server).
    ///
    /// Exit code: 0 allow, 2 deny, 3 approval_required, 1 bad input.
    Check(check::CheckArgs),
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Run the Bridle server.
    Serve(serve::ServeArgs),
    /// Run the server with the five reference agents, their owners and
    /// approvers, and some activity loaded; prints what to try next.
    Demo(demo::DemoArgs),
}

/// Parse the command line, run the command, and map the outcome to an exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Audit(command) => audit::run(&command),
        Command::Serve(args) => serve::run(&args),
        Command::Demo(args) => demo::run(&args),
    }
}
