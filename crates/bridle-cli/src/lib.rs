//! The `bridle` command line. `main.rs` only calls [`run`].

// First: its `say!`/`sayln!` are used by the modules below.
#[macro_use]
mod output;
mod agent;
mod agent_show;
mod approvals;
mod audit;
mod check;
mod client;
mod credentials;
mod decide;
mod demo;
mod elevation;
mod findings;
mod gateway;
mod keys;
mod ocsf;
mod principal;
mod problem;
mod report;
mod secret;
mod serve;
mod telemetry;
mod token;
mod usage;

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
    /// Ask the running server for a decision, as the agent (its access
    /// token) or as a `pep` forwarding it.
    ///
    /// Exit code: 0 allow, 2 deny, 3 approval_required, 1 error.
    Decide(decide::DecideArgs),
    /// Get an access token for an agent's OAuth client (client
    /// credentials) and print it, for scripts and MCP clients.
    Token(token::TokenArgs),
    /// Manage agents: apply manifests, list, suspend, resume, retire,
    /// review, credentials, elevations.
    Agent(agent::AgentArgs),
    /// Create and deactivate principals (people and PEPs) and their API keys.
    Principal(principal::PrincipalArgs),
    /// The human-approval inbox: list, show, approve, deny.
    Approvals(approvals::ApprovalsArgs),
    /// Verify, list and export the audit log.
    Audit(audit::AuditArgs),
    /// Posture findings per agent, mapped to OWASP and NIST controls.
    Findings(findings::FindingsArgs),
    /// The token signing keys: list, rotate.
    Keys(keys::KeysArgs),
    /// The compliance report: per agent and per control of OWASP NHI,
    /// OWASP Agentic and NIST AI RMF, with the evidence (Markdown, JSON or
    /// HTML with charts).
    Report(report::ReportArgs),
    /// Run the Bridle server.
    Serve(serve::ServeArgs),
    /// Run the MCP gateway: agents connect with their Bridle token; every
    /// call is decided by the server before it reaches an upstream.
    Gateway(gateway::GatewayArgs),
    /// Run the server with the five reference agents, their owners and
    /// approvers, and some activity loaded; prints what to try next.
    Demo(demo::DemoArgs),
}

/// Parse the command line, run the command, and map the outcome to an exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // Before any HTTP client is built (`serve`'s webhooks and `demo` build
    // one too).
    client::install_tls_provider();
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Decide(args) => decide::run(&args),
        Command::Token(args) => token::run(&args),
        Command::Agent(args) => agent::run(&args),
        Command::Principal(args) => principal::run(&args),
        Command::Approvals(args) => approvals::run(&args),
        Command::Audit(args) => audit::run(&args),
        Command::Findings(args) => findings::run(&args),
        Command::Keys(args) => keys::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Gateway(args) => gateway::run(&args),
        Command::Demo(args) => demo::run(&args),
    }
}
