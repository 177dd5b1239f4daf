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
            let mut v = client.get(&["v1", "approvals"], &q)?;
            if let Some(list) = v.get_mut("approvals").and_then(Value::as_array_mut) {
                for a in list {
                    add_rule(&client, a);
                }
            }
            Ok(render(*output, &v, |v| list_text(items(v, "approvals"))))
        }
        ApprovalsCommand::Show { id, output } => {
            let mut v = client.get(&["v1", "approvals", id], &[])?;
            add_rule(&client, &mut v);
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

/// How many audit pages (of [`AUDIT_PAGE`] events) are read looking for the
/// decision that asked for an approval.
const AUDIT_PAGES: usize = 3;
const AUDIT_PAGE: u32 = 200;

/// Adds `rule: {agent, path, line}` to an approval: the manifest element
/// that asked for it (the approval itself does not record it). For an
/// action, the source of the `approval_required` reason of a decision that
/// points at the approval, read from the audit log; for an elevation, the
/// manifest's `elevation` entry of that name in the version in force.
/// Nothing is added when the caller may not read them (an approver who is
/// neither the agent's owner, an `admin` nor an `auditor`) or they are not
/// found.
fn add_rule(client: &Client, approval: &mut Value) {
    let rule = match approval["kind"].as_str() {
        Some("action") => action_rule(client, approval),
        Some("elevation") => elevation_rule(client, approval),
        _ => None,
    };
    if let Some(rule) = rule
        && let Some(map) = approval.as_object_mut()
    {
        map.insert("rule".into(), rule);
    }
}

/// The `elevation[i]` entry (and its line) that an elevation approval
/// (action `elevation:NAME`) is for, in the agent's version in force.
fn elevation_rule(client: &Client, approval: &Value) -> Option<Value> {
    let agent = approval["agent"].as_str()?;
    let name = approval["action"].as_str()?.strip_prefix("elevation:")?;
    let record = client.get(&["v1", "agents", agent], &[]).ok()?;
    let version = record.get("version")?.as_i64()?.to_string();
    let v = client
        .get(&["v1", "agents", agent, "versions", &version], &[])
        .ok()?;
    let manifest = bridle_core::Manifest::from_source(v.get("source")?.as_str()?).ok()?;
    let (i, spec) = manifest
        .elevation
        .iter()
        .enumerate()
        .find(|(_, e)| e.name == name)?;
    Some(json!({"agent": agent, "path": format!("elevation[{i}]"), "line": spec.pos.line}))
}

/// The source of the `approval_required` reason of the decision that asked
/// for an action approval, from the agent's audit log.
fn action_rule(client: &Client, approval: &Value) -> Option<Value> {
    let (Some(id), Some(agent), Some(created)) = (
        approval["id"].as_str(),
        approval["agent"].as_str(),
        approval["created_at"].as_str(),
    ) else {
        return None;
    };
    // The decision is recorded just after the approval is created; a
    // minute's margin covers clocks read a little apart.
    let since = created
        .parse::<jiff::Timestamp>()
        .ok()
        .and_then(|t| t.checked_sub(jiff::SignedDuration::from_secs(60)).ok())
        .map_or_else(|| created.to_owned(), |t| t.to_string());
    let mut after: Option<u64> = None;
    for _ in 0..AUDIT_PAGES {
        let mut q = vec![
            ("type", "decision".to_owned()),
            ("agent", agent.to_owned()),
            ("since", since.clone()),
            ("limit", AUDIT_PAGE.to_string()),
        ];
        if let Some(seq) = after {
            q.push(("after", seq.to_string()));
        }
        let page = client.get(&["v1", "audit"], &q).ok()?;
        let events = items(&page, "events");
        if let Some(rule) = rule_in(events, id) {
            return Some(rule);
        }
        match events
            .last()
            .and_then(|e| e.get("seq"))
            .and_then(Value::as_u64)
        {
            Some(seq) if events.len() >= AUDIT_PAGE as usize => after = Some(seq),
            _ => return None,
        }
    }
    None
}

/// The source of the `approval_required` reason of the first decision event
/// that names approval `id`.
fn rule_in(events: &[Value], id: &str) -> Option<Value> {
    events
        .iter()
        .filter(|e| {
            e.get("detail")
                .and_then(|d| d.get("approval_id"))
                .and_then(Value::as_str)
                == Some(id)
        })
        .flat_map(|e| items(e, "reasons"))
        .find(|r| r["code"] == "approval_required" && r["source"].is_object())
        .map(|r| r["source"].clone())
}

/// `tools[0].approval, line 12` (with the agent when it is another's: a
/// delegator's record).
fn rule_text(v: &Value) -> String {
    let rule = &v["rule"];
    let Some(path) = rule["path"].as_str() else {
        return "-".into();
    };
    let mut out = path.to_owned();
    if let Some(line) = rule["line"].as_u64() {
        out.push_str(&format!(", line {line}"));
    }
    if let Some(agent) = rule["agent"]
        .as_str()
        .filter(|a| v["agent"].as_str() != Some(a))
    {
        out = format!("{agent}: {out}");
    }
    out
}

/// The arguments on one line: `{"vendor":"acme","amount":7000}` (for an
/// elevation, its duration and reason); `-` when there are none.
fn args_text(v: &Value) -> String {
    match &v["args"] {
        Value::Object(m) if m.is_empty() => "-".into(),
        Value::Null => "-".into(),
        args => args.to_string(),
    }
}

/// The elevation's name for elevations (the action reads
/// `elevation:NAME`), the action for action approvals.
fn what(v: &Value) -> String {
    match v["kind"].as_str() {
        Some("elevation") => {
            let action = cell(&v["action"]);
            let name = action.strip_prefix("elevation:").unwrap_or(&action);
            format!("elevation: {name}")
        }
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
                args_text(a),
                rule_text(a),
                cell(&a["state"]),
                tally(a),
                cell(&a["expires_at"]),
            ]
        })
        .collect();
    table(
        &[
            "ID", "AGENT", "REQUEST", "ARGS", "RULE", "STATE", "VOTES", "EXPIRES",
        ],
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
        ("request", what(v)),
        ("args", args_text(v)),
        ("resource", cell(&v["resource"])),
        ("rule", rule_text(v)),
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
            "ID    AGENT            REQUEST                              ARGS  RULE  STATE    VOTES          EXPIRES\n\
             ap_1  procurement-bot  procurement.create_purchase_request  -     -     pending  1/2 approvals  2026-01-01T00:00:00Z\n"
        );
    }

    /// One row of `list_text`, split on runs of two or more spaces.
    fn row(text: &str, n: usize) -> Vec<String> {
        let line = text.lines().nth(n).unwrap();
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_inbox_shows_the_arguments_and_the_rule_that_asked() {
        let events = json!([
            {"seq": 7, "type": "decision", "agent": "procurement-bot", "decision": "allow",
             "reasons": [{"code": "granted", "message": "ok"}], "detail": {"approval_id": null}},
            {"seq": 9, "type": "decision", "agent": "procurement-bot", "decision": "approval_required",
             "reasons": [{"code": "approval_required", "message": "amount over 5000",
                          "source": {"agent": "procurement-bot", "path": "tools[0].approval", "line": 14}}],
             "detail": {"approval_id": "ap_1"}},
        ]);
        let rule = rule_in(events.as_array().unwrap(), "ap_1").unwrap();
        assert!(rule_in(events.as_array().unwrap(), "ap_2").is_none());
        let approvals = json!([{
            "id": "ap_1", "kind": "action", "agent": "procurement-bot",
            "action": "procurement.create_purchase_request",
            "args": {"vendor": "acme", "amount": 7000}, "rule": rule,
            "state": "pending", "min_approvals": 1, "votes": [], "expires_at": "t"
        }]);
        let text = list_text(approvals.as_array().unwrap());
        assert_eq!(
            row(&text, 1),
            [
                "ap_1",
                "procurement-bot",
                "procurement.create_purchase_request",
                r#"{"vendor":"acme","amount":7000}"#,
                "tools[0].approval, line 14",
                "pending",
                "0/1 approvals",
                "t"
            ]
        );
    }

    #[test]
    fn an_elevation_reads_its_name_once() {
        let approvals = json!([{
            "id": "ap_2", "kind": "elevation", "agent": "ir-bot",
            "action": "elevation:identity-write",
            "args": {"duration": "30m", "reason": "incident 42"},
            "state": "pending", "min_approvals": 1, "votes": [], "expires_at": "t"
        }]);
        let text = list_text(approvals.as_array().unwrap());
        let cells = row(&text, 1);
        assert_eq!(cells[2], "elevation: identity-write", "{text}");
        assert_eq!(cells[3], r#"{"duration":"30m","reason":"incident 42"}"#);
        assert!(!text.contains("elevation:identity-write"), "{text}");
    }
}
