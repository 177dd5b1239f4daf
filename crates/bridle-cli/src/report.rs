//! `bridle report`: the compliance report (per agent and per control of
//! OWASP NHI, OWASP Agentic and NIST AI RMF, with the evidence), fetched
//! from the server as Markdown, JSON or a self-contained HTML page.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::client::{Client, ClientError, Remote, query};
use crate::output::{finish, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub(crate) enum ReportFormat {
    #[default]
    Md,
    Json,
    Html,
}

impl ReportFormat {
    fn as_str(self) -> &'static str {
        match self {
            Self::Md => "md",
            Self::Json => "json",
            Self::Html => "html",
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    remote: Remote,
    /// How far back (`30d`, `7d`, `12h`; at most `400d`).
    #[arg(long, default_value = "30d")]
    window: String,
    /// Only this agent.
    #[arg(long)]
    agent: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    format: ReportFormat,
    /// Write the report to this file instead of standard output.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
}

pub(crate) fn run(args: &ReportArgs) -> ExitCode {
    finish(execute(args))
}

fn execute(args: &ReportArgs) -> Result<String, ClientError> {
    let q = query(&[
        ("window", Some(args.window.clone())),
        ("agent", args.agent.clone()),
        ("format", Some(args.format.as_str().to_owned())),
    ]);
    let client = Client::new(&args.remote)?;
    let path = ["v1", "reports", "compliance"];
    let body = match args.format {
        ReportFormat::Json => json(&client.get(&path, &q)?),
        ReportFormat::Md | ReportFormat::Html => client.get_text(&path, &q)?,
    };
    match &args.output {
        None => Ok(body),
        Some(file) => {
            std::fs::write(file, &body)
                .map_err(|e| ClientError::Local(format!("{}: {e}", file.display())))?;
            Ok(format!("wrote {} ({} bytes)\n", file.display(), body.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    #[test]
    fn report_takes_window_agent_format_and_a_file() {
        let Command::Report(r) = Cli::try_parse_from([
            "bridle", "report", "--window", "7d", "--agent", "swe-bot", "--format", "html", "-o",
            "r.html",
        ])
        .unwrap()
        .command
        else {
            panic!("not report");
        };
        assert_eq!(r.window, "7d");
        assert_eq!(r.agent.as_deref(), Some("swe-bot"));
        assert_eq!(r.format, ReportFormat::Html);
        assert_eq!(r.output, Some(PathBuf::from("r.html")));

        let Command::Report(d) = Cli::try_parse_from(["bridle", "report"]).unwrap().command else {
            panic!("not report");
        };
        assert_eq!((d.window.as_str(), d.format), ("30d", ReportFormat::Md));
        assert!(Cli::try_parse_from(["bridle", "report", "--format", "pdf"]).is_err());
    }
}
