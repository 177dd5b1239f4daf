//! `bridle approvals`: the human-approval inbox.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::Output;
use crate::client::{Client, ClientError, Remote, query};
use crate::output::{cell, fields, finish, items, render, table};

#[derive(Debug, clap::Args)]
pub(crate) struct ApprovalsArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: ApprovalsCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum State {
    Pending,
    Approved,
    Denied,
    Expired,
    Consumed,
    Cancelled,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Expired => "expired",
            State::Consumed => "consumed",
            State::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum ApprovalsCommand {
    /// List approvals, optionally in one state.
    List {
        #[arg(long, value_enum)]
        state: Option<State>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show one approval with its request and votes.
    Show {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Vote to approve.
    Approve(Vote),
    /// Vote to deny.
    Deny(Vote),
}

#[derive(Debug, clap::Args)]
struct Vote {
    id: String,
    /// Recorded with your vote and in the audit log.
    #[arg(long)]
    comment: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub(crate) fn run(args: &ApprovalsArgs) -> ExitCode {
    finish(execute(args))
}

fn execute(args: &ApprovalsArgs) -> Result<String, ClientError> {
    let client = Client::new(&args.remote)?;
    match &args.command {
        ApprovalsCommand::List { state, output } => {
            let q = query(&[("state", state.map(|s| s.as_str().to_owned()))]);
            let v = client.get(&["v1", "approvals"], &q)?;
            Ok(render(*output, &v, |v| list_text(items(v, "approvals"))))
        }
        ApprovalsCommand::Show { id, output } => {
            let v = client.get(&["v1", "approvals", id], &[])?;
            Ok(render(*output, &v, show_text))
        }
        ApprovalsCommand::Approve(vote) => cast(&client, "approve", vote),
        ApprovalsCommand::Deny(vote) => cast(&client, "deny", vote),
    }
}

fn cast(client: &Client, op: &str, vote: &Vote) -> Result<String, ClientError> {
    let body = match &vote.comment {
        Some(c) => json!({"comment": c}),
        None => json!({}),
    };
    let v = client.post(&["v1", "approvals", &vote.id, op], body)?;
    Ok(render(vote.output, &v, |v| {
        format!(
            "approval `{}` is {} ({})\n",
            cell(&v["id"]),
            cell(&v["state"]),
            tally(v)
        )
    }))
}

/// `1/2 approvals`: approving votes of the minimum needed.
fn tally(v: &Value) -> String {
    let yes = items(v, "votes")
        .iter()
        .filter(|vote| vote["vote"].as_str() == Some("approve"))
        .count();
    format!("{yes}/{} approvals", cell(&v["min_approvals"]))
}

/// `kind` for elevations, the action for action approvals.
fn what(v: &Value) -> String {
    match v["kind"].as_str() {
        Some("elevation") => format!("elevation: {}", cell(&v["action"])),
        Some("change") => {
            let arg = |k: &str| v.get("args").and_then(|a| a.get(k)).map(cell);
            format!(
                "change: version {} by {}",
                arg("version").unwrap_or_default(),
                arg("submitted_by").unwrap_or_default()
            )
        }
        _ => cell(&v["action"]),
    }
}

fn list_text(approvals: &[Value]) -> String {
    let rows: Vec<Vec<String>> = approvals
        .iter()
        .map(|a| {
            vec![
                cell(&a["id"]),
                cell(&a["agent"]),
                what(a),
                cell(&a["state"]),
                tally(a),
                cell(&a["expires_at"]),
            ]
        })
        .collect();
    table(
        &["ID", "AGENT", "REQUEST", "STATE", "VOTES", "EXPIRES"],
        &rows,
    )
}

fn show_text(v: &Value) -> String {
    if v["kind"] == "change" {
        return change_text(v);
    }
    let mut out = fields(&[
        ("id", cell(&v["id"])),
        ("kind", cell(&v["kind"])),
        ("agent", cell(&v["agent"])),
        ("action", cell(&v["action"])),
        ("args", v["args"].to_string()),
        ("resource", cell(&v["resource"])),
        ("state", cell(&v["state"])),
        ("approvers", cell(&v["approvers"])),
        ("votes", tally(v)),
        ("created", cell(&v["created_at"])),
        ("expires", cell(&v["expires_at"])),
    ]);
    out.push_str(&votes_text(v));
    out
}

/// A proposed manifest change: who proposed what, the classified changes
/// and the diff an approver reviews.
fn change_text(v: &Value) -> String {
    let args = &v["args"];
    let mut out = fields(&[
        ("id", cell(&v["id"])),
        ("kind", "change (a proposed manifest version)".to_owned()),
        ("agent", cell(&v["agent"])),
        (
            "version",
            format!(
                "{} (replacing {})",
                cell(&args["version"]),
                cell(&args["base_version"])
            ),
        ),
        ("submitted by", cell(&args["submitted_by"])),
        ("state", cell(&v["state"])),
        ("approvers", cell(&v["approvers"])),
        ("votes", tally(v)),
        ("created", cell(&v["created_at"])),
        ("expires", cell(&v["expires_at"])),
    ]);
    out.push_str(&votes_text(v));
    out.push_str("changes:\n");
    out.push_str(&crate::agent::changes_text(items(args, "changes")));
    if let Some(diff) = args["unified"].as_str() {
        out.push_str(diff);
        if !diff.ends_with('\n') {
            out.push('\n');
        }
    }
    if v["replay"].is_object() {
        out.push_str("what it would have changed:\n");
        out.push_str(&crate::usage::replay_text(&v["replay"]));
    }
    out
}

fn votes_text(v: &Value) -> String {
    let mut out = String::new();
    for vote in items(v, "votes") {
        out.push_str(&format!(
            "  {} {} at {}",
            cell(&vote["principal"]),
            cell(&vote["vote"]),
            cell(&vote["at"])
        ));
        if let Some(c) = vote["comment"].as_str() {
            out.push_str(&format!(": {c}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    #[test]
    fn a_change_approval_shows_its_changes_and_diff() {
        let v = serde_json::json!({"id": "apr_1", "kind": "change", "agent": "pay-bot",
            "state": "pending", "approvers": ["role:admin"], "min_approvals": 1, "votes": [],
            "created_at": "2026-12-01T00:00:00Z", "expires_at": "2026-12-04T00:00:00Z",
            "args": {"version": 2, "base_version": 1, "submitted_by": "alice",
                "changes": [{"path": "tools[t].access", "effect": "widening", "detail": "read → write"}],
                "unified": "--- version 1\n+++ version proposed\n-    access: read\n+    access: write\n"}});
        assert_eq!(what(&v), "change: version 2 by alice");
        let text = show_text(&v);
        for line in [
            "submitted by",
            "2 (replacing 1)",
            "  widening   tools[t].access: read → write\n",
            "+    access: write\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
    }

    fn parse(args: &[&str]) -> ApprovalsCommand {
        let mut argv = vec!["bridle", "approvals"];
        argv.extend(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Approvals(a) => a.command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn list_filters_by_a_known_state_only() {
        assert!(matches!(
            parse(&["list", "--state", "pending"]),
            ApprovalsCommand::List {
                state: Some(State::Pending),
                ..
            }
        ));
        assert!(Cli::try_parse_from(["bridle", "approvals", "list", "--state", "open"]).is_err());
    }

    #[test]
    fn votes_take_an_optional_comment() {
        let ApprovalsCommand::Deny(v) = parse(&["deny", "ap_1", "--comment", "not this vendor"])
        else {
            panic!("not deny");
        };
        assert_eq!(
            (v.id.as_str(), v.comment.as_deref()),
            ("ap_1", Some("not this vendor"))
        );
        assert!(matches!(
            parse(&["approve", "ap_1"]),
            ApprovalsCommand::Approve(Vote { comment: None, .. })
        ));
    }

    #[test]
    fn the_inbox_shows_request_and_tally() {
        let approvals = json!([{
            "id": "ap_1", "kind": "action", "agent": "procurement-bot",
            "action": "procurement.create_purchase_request", "state": "pending",
            "min_approvals": 2, "votes": [{"principal": "frank", "vote": "approve", "at": "t"}],
            "expires_at": "2026-01-01T00:00:00Z"
        }]);
        assert_eq!(
            list_text(approvals.as_array().unwrap()),
            "ID    AGENT            REQUEST                              STATE    VOTES          EXPIRES\n\
             ap_1  procurement-bot  procurement.create_purchase_request  pending  1/2 approvals  2026-01-01T00:00:00Z\n"
        );
    }
}
