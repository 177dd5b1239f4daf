//! `bridle findings`: posture findings per agent, with the framework
//! controls (OWASP NHI, OWASP Agentic, NIST AI RMF) each one maps to.

use std::process::ExitCode;

use serde_json::Value;

use crate::Output;
use crate::client::{Client, ClientError, Remote, query};
use crate::output::{cell, finish, items, render};

#[derive(Debug, clap::Args)]
pub(crate) struct FindingsArgs {
    #[command(flatten)]
    remote: Remote,
    /// Only this agent's findings.
    #[arg(long)]
    agent: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub(crate) fn run(args: &FindingsArgs) -> ExitCode {
    finish(execute(args))
}

fn execute(args: &FindingsArgs) -> Result<String, ClientError> {
    let q = query(&[("agent", args.agent.clone())]);
    let v = Client::new(&args.remote)?.get(&["v1", "findings"], &q)?;
    Ok(render(args.output, &v, |v| text(items(v, "findings"))))
}

/// One block per finding: severity, agent, code and title; the detail;
/// what to do; since when it is open; the framework controls.
fn text(findings: &[Value]) -> String {
    if findings.is_empty() {
        return "no findings\n".into();
    }
    let width = findings
        .iter()
        .map(|f| cell(&f["severity"]).len())
        .max()
        .unwrap_or(0);
    let pad = " ".repeat(width + 2);
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{:<width$}  {}  {}: {}\n{pad}{}\n",
            cell(&f["severity"]),
            cell(&f["agent"]),
            cell(&f["code"]),
            cell(&f["title"]),
            cell(&f["detail"]),
        ));
        if let Some(fix) = f["remediation"].as_str() {
            out.push_str(&format!("{pad}fix: {fix}\n"));
        }
        if let Some(since) = f["opened_at"].as_str() {
            out.push_str(&format!("{pad}open since {since}\n"));
        }
        let frameworks: Vec<String> = items(f, "frameworks").iter().map(cell).collect();
        if !frameworks.is_empty() {
            out.push_str(&format!("{pad}{}\n", frameworks.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;
    use serde_json::json;

    #[test]
    fn findings_take_an_agent_filter_and_print_detail_and_frameworks() {
        let Command::Findings(f) =
            Cli::try_parse_from(["bridle", "findings", "--agent", "swe-bot"])
                .unwrap()
                .command
        else {
            panic!("not findings");
        };
        assert_eq!(f.agent.as_deref(), Some("swe-bot"));

        let findings = json!([
            {"agent": "swe-bot", "code": "wildcard_grant", "severity": "high",
             "title": "Grant of every tool", "detail": "tools[0] grants `*`",
             "frameworks": ["OWASP-NHI5:2025", "NIST-AI-RMF-MANAGE-1.3"],
             "remediation": "Replace `*`.", "opened_at": "2026-12-01T10:00:00.000000Z"},
            {"agent": "ir-bot", "code": "long_token_ttl", "severity": "low",
             "title": "Access tokens live longer than 15 minutes", "detail": "token_ttl is 1h",
             "frameworks": []}
        ]);
        assert_eq!(
            text(findings.as_array().unwrap()),
            "high  swe-bot  wildcard_grant: Grant of every tool\n      tools[0] grants `*`\n      fix: Replace `*`.\n      open since 2026-12-01T10:00:00.000000Z\n      OWASP-NHI5:2025, NIST-AI-RMF-MANAGE-1.3\n\
             low   ir-bot  long_token_ttl: Access tokens live longer than 15 minutes\n      token_ttl is 1h\n"
        );
        assert_eq!(text(&[]), "no findings\n");
    }
}
