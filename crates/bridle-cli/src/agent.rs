//! `bridle agent`: apply manifests and manage agents on a Bridle server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bridle_core::Manifest;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::Output;
use crate::client::{Client, ClientError, Remote};
use crate::credentials::CredentialsCommand;
use crate::elevation::ElevationCommand;
use crate::output::{cell, finish, items, render, table};

#[derive(Debug, clap::Args)]
pub(crate) struct AgentArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: AgentCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AgentCommand {
    /// Create or update the agent a manifest file describes.
    ///
    /// The file is checked locally first; a bad file is reported like
    /// `bridle check` does and nothing is sent.
    Apply {
        /// The manifest (`.yaml`, `.yml` or `.json`).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// List every agent with its state and flags.
    List {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show one agent's record.
    Show {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Every version of the agent's manifest: when, by whom, what it changed.
    History {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Compare two versions of the agent's manifest: a unified diff of the
    /// texts and the classified changes (widening, narrowing, neutral).
    Diff {
        id: String,
        /// The earlier version (default: the one before `--to`; 0 compares
        /// with nothing).
        #[arg(long)]
        from: Option<i64>,
        /// The later version (default: the version in force).
        #[arg(long)]
        to: Option<i64>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// What the agent actually did with each grant over a window: decisions
    /// allowed and denied, approvals asked, last use, the argument values
    /// seen; the grants never used; the actions no grant covers.
    Usage {
        id: String,
        /// How far back (`30d`, `7d`, `12h`).
        #[arg(long, default_value = "30d")]
        window: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// A narrowed manifest from what the agent used over a window: unused
    /// grants removed, globs replaced by the names used, `in` lists and
    /// `min`/`max` tightened; printed as the evidence and a diff (with
    /// `--output json`, the manifest too). Never wider than the version in
    /// force; changes nothing.
    Suggest {
        id: String,
        /// How far back (`30d`, `7d`).
        #[arg(long, default_value = "30d")]
        window: String,
        /// Also write the suggested manifest to this file (to review, then
        /// `agent replay` or `agent apply`).
        #[arg(long, value_name = "FILE")]
        write: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Decide the agent's recorded decisions again against a candidate
    /// manifest, and show what would change (allow -> deny would break the
    /// agent; deny -> allow would widen it). Changes nothing.
    Replay {
        id: String,
        /// The candidate manifest.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// How far back (`7d`, `24h`).
        #[arg(long, default_value = "7d")]
        since: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Suspend an agent: every decision is denied until it is resumed.
    Suspend(Transition),
    /// Resume a suspended agent.
    Resume(Transition),
    /// Retire an agent for good: revokes its credentials and tokens,
    /// cancels its pending approvals and ends its elevations.
    Retire(Transition),
    /// Record an access review of the agent now.
    Review {
        id: String,
        #[arg(long)]
        comment: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// The agent's OAuth clients: create, list, rotate, revoke.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Just-in-time elevations: request one, list them.
    #[command(subcommand)]
    Elevation(ElevationCommand),
}

#[derive(Debug, clap::Args)]
struct Transition {
    id: String,
    /// Why; recorded in the audit log.
    #[arg(long)]
    reason: String,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub(crate) fn run(args: &AgentArgs) -> ExitCode {
    finish(execute(args))
}

fn execute(args: &AgentArgs) -> Result<String, ClientError> {
    let client = || Client::new(&args.remote);
    match &args.command {
        AgentCommand::Apply { file, output } => {
            // A bad manifest is reported before any connection is attempted.
            let (id, source) = read_manifest(file)?;
            apply(&client()?, file, &id, source, *output)
        }
        AgentCommand::List { output } => {
            let v = client()?.get(&["v1", "agents"], &[])?;
            Ok(render(*output, &v, |v| list_text(items(v, "agents"))))
        }
        AgentCommand::Show { id, output } => {
            let client = client()?;
            let mut v = client.get(&["v1", "agents", id], &[])?;
            crate::agent_show::add_activity(&client, id, &mut v);
            Ok(render(*output, &v, crate::agent_show::show_text))
        }
        AgentCommand::History { id, output } => {
            let v = client()?.get(&["v1", "agents", id, "versions"], &[])?;
            Ok(render(*output, &v, |v| history_text(items(v, "versions"))))
        }
        AgentCommand::Diff {
            id,
            from,
            to,
            output,
        } => {
            let mut query = Vec::new();
            if let Some(from) = from {
                query.push(("from", from.to_string()));
            }
            if let Some(to) = to {
                query.push(("to", to.to_string()));
            }
            let v = client()?.get(&["v1", "agents", id, "diff"], &query)?;
            Ok(render(*output, &v, diff_text))
        }
        AgentCommand::Usage { id, window, output } => {
            let query = [("window", window.clone())];
            let v = client()?.get(&["v1", "agents", id, "usage"], &query)?;
            Ok(render(*output, &v, crate::usage::usage_text))
        }
        AgentCommand::Suggest {
            id,
            window,
            write,
            output,
        } => {
            let query = [("window", window.clone())];
            let v = client()?.get(&["v1", "agents", id, "suggestion"], &query)?;
            if let Some(file) = write {
                let text = v
                    .get("manifest")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                std::fs::write(file, text).map_err(|e| {
                    ClientError::Local(format!("cannot write `{}`: {e}", file.display()))
                })?;
            }
            Ok(render(*output, &v, crate::usage::suggestion_text))
        }
        AgentCommand::Replay {
            id,
            file,
            since,
            output,
        } => {
            let (_, source) = read_manifest(file)?;
            let ct = content_type(file, &source);
            let v = client()?.post_raw(
                &["v1", "agents", id, "replay"],
                &[("since", since.clone())],
                ct,
                source,
            )?;
            Ok(render(*output, &v, crate::usage::replay_text))
        }
        AgentCommand::Suspend(t) => transition(&client()?, "suspend", t),
        AgentCommand::Resume(t) => transition(&client()?, "resume", t),
        AgentCommand::Retire(t) => transition(&client()?, "retire", t),
        AgentCommand::Review {
            id,
            comment,
            output,
        } => {
            let body = match comment {
                Some(c) => json!({"comment": c}),
                None => json!({}),
            };
            let v = client()?.post(&["v1", "agents", id, "review"], body)?;
            Ok(render(*output, &v, |v| {
                format!(
                    "reviewed `{}` at {}\n",
                    cell(&v["id"]),
                    cell(&v["last_review_at"])
                )
            }))
        }
        AgentCommand::Credentials(command) => crate::credentials::execute(client, command),
        AgentCommand::Elevation(command) => crate::elevation::execute(&args.remote, command),
    }
}

/// The manifest's `agent` id and the file's text, or the local errors.
fn read_manifest(file: &Path) -> Result<(String, String), ClientError> {
    let name = file.display().to_string();
    let source = std::fs::read_to_string(file)
        .map_err(|e| ClientError::Local(format!("cannot read `{name}`: {e}")))?;
    let manifest = Manifest::from_source(&source)
        .map_err(|errs| ClientError::Local(crate::check::manifest_errors(&name, &errs)))?;
    Ok((manifest.agent.to_string(), source))
}

/// `application/yaml` or `application/json` by extension; an unknown
/// extension is judged by the first character (JSON is an object).
pub(crate) fn content_type(file: &Path, source: &str) -> &'static str {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("json") => "application/json",
        Some("yaml" | "yml") => "application/yaml",
        _ if source.trim_start().starts_with('{') => "application/json",
        _ => "application/yaml",
    }
}

fn apply(
    client: &Client,
    file: &Path,
    id: &str,
    source: String,
    output: Output,
) -> Result<String, ClientError> {
    let ct = content_type(file, &source);
    let (status, v) = match client.put(&["v1", "agents", id], ct, source) {
        // Server-side errors with lines point into the file, like `check`.
        Err(ClientError::Problem(p)) => {
            let file = file.display().to_string();
            return Err(ClientError::Local(p.render(Some(&file))));
        }
        other => other?,
    };
    // Warnings go to stderr, like `bridle check`'s, so `--output json` on
    // stdout stays one document.
    let name = file.display().to_string();
    for w in items(&v, "warnings") {
        if let Ok(w) = serde_json::from_value::<bridle_core::manifest::Warning>(w.clone()) {
            eprintln!("{}", crate::check::warning_line(&name, &w));
        }
    }
    Ok(render(output, &v, |v| applied_text(status, v)))
}

fn applied_text(status: StatusCode, v: &Value) -> String {
    if status == StatusCode::ACCEPTED {
        return proposed_text(v);
    }
    let verb = if status == StatusCode::CREATED {
        "created"
    } else {
        "updated"
    };
    let mut out = format!(
        "{verb} `{}` version {}\n",
        cell(&v["id"]),
        cell(&v["version"])
    );
    if !items(v, "flags").is_empty() {
        out.push_str(&format!("flags: {}\n", cell(&v["flags"])));
    }
    out.push_str(&changes_text(items(v, "changes")));
    out
}

/// A change held by change control: what it would change, the approval to
/// vote on, and who may.
fn proposed_text(v: &Value) -> String {
    let mut out = format!(
        "proposed version {}: awaits approval {} (change control)\n",
        cell(&v["version"]),
        cell(&v["approval_id"])
    );
    let eligible: Vec<String> = items(v, "eligible_approvers").iter().map(cell).collect();
    if eligible.is_empty() {
        out.push_str(&format!(
            "approvers: {} (nobody but you: {})\n",
            cell(&v["approvers"]),
            v["warning"].as_str().unwrap_or("add an approver")
        ));
    } else {
        out.push_str(&format!("may approve: {}\n", eligible.join(", ")));
    }
    out.push_str(&format!("expires: {}\n", cell(&v["expires_at"])));
    out.push_str(&changes_text(items(v, "changes")));
    out
}

/// One line per change: `  widening   tools[x].args.amount.max: max 1 → 2`.
pub(crate) fn changes_text(changes: &[Value]) -> String {
    changes
        .iter()
        .map(|c| {
            let path = cell(&c["path"]);
            let place = if path.is_empty() {
                "(manifest)".into()
            } else {
                path
            };
            format!(
                "  {:<10} {place}: {}\n",
                cell(&c["effect"]),
                cell(&c["detail"])
            )
        })
        .collect()
}

fn history_text(versions: &[Value]) -> String {
    let mut out = String::new();
    for v in versions {
        out.push_str(&format!(
            "version {} ({}) by {} at {}",
            cell(&v["version"]),
            cell(&v["state"]),
            cell(&v["created_by"]),
            cell(&v["created_at"])
        ));
        let approvers: Vec<String> = items(v, "approved_by").iter().map(cell).collect();
        if !approvers.is_empty() {
            out.push_str(&format!(", approved by {}", approvers.join(", ")));
        }
        out.push('\n');
        out.push_str(&changes_text(items(v, "changes")));
    }
    out
}

fn diff_text(v: &Value) -> String {
    let mut out = cell(&v["unified"]);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let changes = items(v, "changes");
    if changes.is_empty() {
        out.push_str("no changes\n");
    } else {
        out.push_str(&format!(
            "changes from version {} to {}:\n",
            cell(&v["from"]),
            cell(&v["to"])
        ));
        out.push_str(&changes_text(changes));
    }
    out
}

fn transition(client: &Client, op: &str, t: &Transition) -> Result<String, ClientError> {
    let v = client.post(&["v1", "agents", &t.id, op], json!({"reason": t.reason}))?;
    Ok(render(t.output, &v, |v| {
        format!("`{}` is now {}\n", cell(&v["id"]), cell(&v["state"]))
    }))
}

pub(crate) fn list_text(agents: &[Value]) -> String {
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            [
                "id",
                "version",
                "state",
                "owner",
                "environment",
                "expires",
                "flags",
            ]
            .iter()
            .map(|k| cell(&a[*k]))
            .collect()
        })
        .collect();
    table(
        &[
            "ID",
            "VERSION",
            "STATE",
            "OWNER",
            "ENVIRONMENT",
            "EXPIRES",
            "FLAGS",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> AgentArgs {
        let mut argv = vec!["bridle", "agent"];
        argv.extend(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Agent(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_content_type_follows_the_extension() {
        let ct = |f: &str, s: &str| content_type(Path::new(f), s);
        assert_eq!(ct("bot.yaml", "{}"), "application/yaml");
        assert_eq!(ct("bot.YML", ""), "application/yaml");
        assert_eq!(ct("bot.json", "agent: x"), "application/json");
        assert_eq!(ct("bot", "  {\"agent\": \"x\"}"), "application/json");
        assert_eq!(ct("bot.txt", "agent: x"), "application/yaml");
    }

    #[test]
    fn url_and_token_may_follow_the_subcommand() {
        let a = parse(&[
            "suspend",
            "swe-bot",
            "--reason",
            "leaked key",
            "--url",
            "http://bridle:9000",
            "--token",
            "bk_1",
        ]);
        assert_eq!(a.remote.url, "http://bridle:9000");
        assert_eq!(a.remote.token, Some("bk_1".parse().unwrap()));
        match a.command {
            AgentCommand::Suspend(t) => {
                assert_eq!(
                    (t.id.as_str(), t.reason.as_str()),
                    ("swe-bot", "leaked key")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lifecycle_changes_need_a_reason() {
        let mut argv = vec!["bridle", "agent", "retire", "swe-bot"];
        assert!(Cli::try_parse_from(&argv).is_err());
        argv.extend(["--reason", "decommissioned"]);
        assert!(Cli::try_parse_from(&argv).is_ok());
    }

    #[test]
    fn subcommands_parse() {
        assert!(matches!(
            parse(&["apply", "-f", "bot.yaml"]).command,
            AgentCommand::Apply { .. }
        ));
        assert!(matches!(
            parse(&["list", "--output", "json"]).command,
            AgentCommand::List {
                output: Output::Json
            }
        ));
        assert!(matches!(
            parse(&["credentials", "create", "swe-bot"]).command,
            AgentCommand::Credentials(CredentialsCommand::Create { .. })
        ));
        assert!(matches!(
            parse(&["credentials", "create", "swe-bot", "--jwk", "key.json"]).command,
            AgentCommand::Credentials(CredentialsCommand::Create { jwk: Some(_), .. })
        ));
        assert!(matches!(
            parse(&[
                "credentials",
                "rotate",
                "swe-bot",
                "swe-bot.x",
                "--overlap",
                "0s"
            ])
            .command,
            AgentCommand::Credentials(CredentialsCommand::Rotate { .. })
        ));
        assert!(matches!(
            parse(&["credentials", "revoke", "swe-bot", "swe-bot.x"]).command,
            AgentCommand::Credentials(CredentialsCommand::Revoke { .. })
        ));
        assert!(matches!(
            parse(&["review", "swe-bot", "--comment", "ok"]).command,
            AgentCommand::Review {
                comment: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn a_bad_manifest_is_reported_locally_with_positions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, "agent: x\nbogus: 1\n").unwrap();
        let Err(ClientError::Local(text)) = read_manifest(&path) else {
            panic!("expected a local error");
        };
        let name = path.display().to_string();
        assert!(
            text.starts_with(&format!("{name}: invalid manifest")),
            "{text}"
        );
        assert!(text.contains(&format!("{name}:2:1: ")), "{text}");
    }

    #[test]
    fn apply_history_and_diff_print_the_changes() {
        let v = json!({"id": "pay-bot", "version": 2, "flags": [], "changes": [
            {"path": "tools[payments.wire].args.amount.max", "effect": "widening", "detail": "max 5000 → 100000"},
            {"path": "purpose", "effect": "neutral", "detail": "changed"},
        ]});
        assert_eq!(
            applied_text(StatusCode::OK, &v),
            "updated `pay-bot` version 2\n  widening   tools[payments.wire].args.amount.max: max 5000 → 100000\n  neutral    purpose: changed\n"
        );
        let versions = [
            json!({"version": 1, "state": "active", "created_by": "alice",
            "created_at": "2026-01-01T00:00:00Z", "changes": [{"path": "agent", "effect": "widening", "detail": "new agent"}]}),
        ];
        assert_eq!(
            history_text(&versions),
            "version 1 (active) by alice at 2026-01-01T00:00:00Z\n  widening   agent: new agent\n"
        );
        let d =
            json!({"from": 1, "to": 2, "unified": "--- version 1\n+++ version 2\n", "changes": []});
        assert_eq!(diff_text(&d), "--- version 1\n+++ version 2\nno changes\n");
    }

    #[test]
    fn a_proposed_change_names_its_approval_and_approvers() {
        let v = json!({"state": "pending_approval", "approval_id": "apr_1", "version": 2,
            "approvers": ["role:admin"], "eligible_approvers": ["admin", "sec-lead"],
            "expires_at": "2026-12-04T00:00:00Z",
            "changes": [{"path": "tools[t].access", "effect": "widening", "detail": "read → write"}]});
        assert_eq!(
            applied_text(StatusCode::ACCEPTED, &v),
            "proposed version 2: awaits approval apr_1 (change control)\nmay approve: admin, sec-lead\nexpires: 2026-12-04T00:00:00Z\n  widening   tools[t].access: read → write\n"
        );
    }

    #[test]
    fn elevations_parse_under_agent() {
        assert!(matches!(
            parse(&[
                "elevation",
                "request",
                "ir-bot",
                "identity-write",
                "--duration",
                "30m",
                "--reason",
                "incident 42",
                "--agent-token-file",
                "tok"
            ])
            .command,
            AgentCommand::Elevation(ElevationCommand::Request { .. })
        ));
        assert!(matches!(
            parse(&["elevation", "list", "ir-bot", "--active"]).command,
            AgentCommand::Elevation(ElevationCommand::List { active: true, .. })
        ));
        assert!(matches!(
            parse(&[
                "elevation",
                "end",
                "ir-bot",
                "elv_a",
                "--reason",
                "done",
                "--agent-token-file",
                "tok"
            ])
            .command,
            AgentCommand::Elevation(ElevationCommand::End { .. })
        ));
        // `end` needs a reason too.
        assert!(
            Cli::try_parse_from(["bridle", "agent", "elevation", "end", "ir-bot", "elv_a"])
                .is_err()
        );
        // A reason is required, as the API requires one.
        assert!(
            Cli::try_parse_from([
                "bridle",
                "agent",
                "elevation",
                "request",
                "ir-bot",
                "x",
                "--duration",
                "30m"
            ])
            .is_err()
        );
    }

    #[test]
    fn apply_says_created_or_updated_with_the_version() {
        let v = json!({"id": "swe-bot", "version": 2, "flags": []});
        assert_eq!(
            applied_text(StatusCode::OK, &v),
            "updated `swe-bot` version 2\n"
        );
        let v = json!({"id": "swe-bot", "version": 1, "flags": ["review_overdue"]});
        assert_eq!(
            applied_text(StatusCode::CREATED, &v),
            "created `swe-bot` version 1\nflags: review_overdue\n"
        );
    }
}
