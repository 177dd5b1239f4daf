//! `bridle audit`: verify the hash chain and its signed checkpoints (on the
//! server, or offline on the store, optionally against a witness file), list
//! events, and export them as JSON lines or OCSF.

use std::io::Write;
use std::process::ExitCode;

use bridle_core::audit::{EventType, SignedCheckpoint};
use bridle_store::Store;
use serde_json::Value;

use crate::Output;
use crate::client::{Client, ClientError, Remote, query};
use crate::output::{cell, finish, items, render, table};

#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// Walk the whole hash chain, check it against the stored head and every
    /// signed checkpoint, and report every altered, removed or reordered
    /// record, a log cut short and a rewritten chain. Exit code 0 when
    /// intact, 2 when broken, 1 on error.
    Verify(VerifyArgs),
    /// List events, oldest first.
    List(ListArgs),
    /// Every matching event, one JSON object per line (raw or OCSF).
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// Read the store directly, offline (`sqlite://PATH` or `postgres://…`),
    /// instead of asking the server.
    #[arg(long)]
    db: Option<String>,
    /// A witness copy of the checkpoints (the JSON lines a file witness
    /// appends) to check the store against too: catches a log cut short or
    /// rewritten even when the store's own checkpoints were removed.
    #[arg(long, requires = "db", value_name = "FILE")]
    checkpoints: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Debug, clap::Args)]
struct Filter {
    /// Only events about this agent.
    #[arg(long)]
    agent: Option<String>,
    /// Only events of this type (decision, outcome, approval, elevation,
    /// credential, token, lifecycle, manifest, principal, authentication).
    #[arg(long = "type", value_parser = event_type)]
    kind: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    #[arg(long, value_parser = instant)]
    since: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    filter: Filter,
    /// At most this many events (the server caps it at 1000).
    #[arg(long)]
    limit: Option<u32>,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// The events as the server stores them.
    Jsonl,
    /// OCSF 1.1 API Activity records.
    Ocsf,
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    #[arg(long, value_enum)]
    format: Format,
    #[command(flatten)]
    filter: Filter,
}

/// Why a filter value on the command line was refused (clap prints it after
/// the value).
#[derive(Debug, thiserror::Error)]
enum FilterError {
    #[error("one of {}", EventType::ALL.map(EventType::as_str).join(", "))]
    EventType,
    #[error("not an RFC 3339 instant: {0}")]
    Instant(jiff::Error),
}

fn event_type(s: &str) -> Result<String, FilterError> {
    match EventType::parse(s) {
        Some(t) => Ok(t.as_str().to_owned()),
        None => Err(FilterError::EventType),
    }
}

fn instant(s: &str) -> Result<String, FilterError> {
    s.parse::<jiff::Timestamp>()
        .map(|_| s.to_owned())
        .map_err(FilterError::Instant)
}

/// One page of `export`; the server's maximum.
const PAGE: usize = 1000;

pub(crate) fn run(args: &AuditArgs) -> ExitCode {
    match &args.command {
        AuditCommand::Verify(v) => verify(&args.remote, v),
        AuditCommand::List(l) => finish(list(&args.remote, l)),
        AuditCommand::Export(e) => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let result = export(&args.remote, e, &mut out);
            match result.and_then(|()| out.flush().map_err(write_error)) {
                Ok(()) => ExitCode::SUCCESS,
                // The reader went away (`| head`): not an error.
                Err(Exported::Closed) => ExitCode::SUCCESS,
                Err(Exported::Failed(e)) => finish(Err(e)),
            }
        }
    }
}

impl Filter {
    fn query(&self) -> Vec<(&'static str, String)> {
        query(&[
            ("agent", self.agent.clone()),
            ("type", self.kind.clone()),
            ("since", self.since.clone()),
        ])
    }
}

fn list(remote: &Remote, args: &ListArgs) -> Result<String, ClientError> {
    let mut q = args.filter.query();
    q.extend(query(&[("limit", args.limit.map(|n| n.to_string()))]));
    let v = Client::new(remote)?.get(&["v1", "audit"], &q)?;
    Ok(render(args.output, &v, |v| list_text(items(v, "events"))))
}

/// What an event came to, in the `DECISION` column: a decision's effect,
/// an outcome's status, a finding opened or resolved, a lifecycle state, an
/// approval's vote; `-` when the event states none.
fn outcome(e: &Value) -> String {
    let detail = |k: &str| e.pointer(&format!("/detail/{k}")).and_then(Value::as_str);
    let said = match e["type"].as_str() {
        Some("decision") => e["decision"].as_str().map(str::to_owned),
        Some("outcome") => detail("status").map(str::to_owned),
        Some("finding") => match (detail("op"), detail("code")) {
            (Some(op), Some(code)) => Some(format!("{op}:{code}")),
            _ => None,
        },
        Some("lifecycle") => detail("state").or(detail("op")).map(str::to_owned),
        Some("approval") => detail("vote").or(detail("state")).map(str::to_owned),
        _ => detail("op").map(str::to_owned),
    };
    said.unwrap_or_else(|| cell(&e["decision"]))
}

fn list_text(events: &[Value]) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let reasons: Vec<String> = items(e, "reasons")
                .iter()
                .map(|r| cell(&r["code"]))
                .collect();
            vec![
                cell(&e["seq"]),
                cell(&e["time"]),
                cell(&e["type"]),
                cell(&e["actor"]),
                cell(&e["agent"]),
                cell(&e["action"]),
                outcome(e),
                if reasons.is_empty() {
                    "-".into()
                } else {
                    reasons.join(",")
                },
            ]
        })
        .collect();
    table(
        &[
            "SEQ", "TIME", "TYPE", "ACTOR", "AGENT", "ACTION", "DECISION", "REASONS",
        ],
        &rows,
    )
}

enum Exported {
    Closed,
    Failed(ClientError),
}

impl From<ClientError> for Exported {
    fn from(e: ClientError) -> Self {
        Self::Failed(e)
    }
}

fn write_error(e: std::io::Error) -> Exported {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Exported::Closed
    } else {
        Exported::Failed(ClientError::Local(format!("cannot write the export: {e}")))
    }
}

/// Page through `/v1/audit` with `after=<last seq>` until a short page.
fn export(remote: &Remote, args: &ExportArgs, out: &mut dyn Write) -> Result<(), Exported> {
    let client = Client::new(remote)?;
    let mut after: Option<u64> = None;
    loop {
        let mut q = args.filter.query();
        q.push(("limit", PAGE.to_string()));
        if let Some(seq) = after {
            q.push(("after", seq.to_string()));
        }
        let page = client.get(&["v1", "audit"], &q)?;
        let events = items(&page, "events");
        for e in events {
            let line = match args.format {
                Format::Jsonl => e.to_string(),
                Format::Ocsf => crate::ocsf::to_ocsf(e).to_string(),
            };
            writeln!(out, "{line}").map_err(write_error)?;
        }
        if events.len() < PAGE {
            return Ok(());
        }
        let last = events.last().and_then(|e| e["seq"].as_u64());
        match (last, after) {
            (Some(l), Some(a)) if l <= a => {
                return Err(ClientError::Local(format!(
                    "the server returned seq {l} again after {a}; it does not support `after`, so the export stopped"
                ))
                .into());
            }
            (None, _) => {
                return Err(ClientError::Local(
                    "an event without `seq`; the export stopped".into(),
                )
                .into());
            }
            (Some(l), _) => after = Some(l),
        }
    }
}

fn verify(remote: &Remote, args: &VerifyArgs) -> ExitCode {
    let result = match &args.db {
        Some(db) => verify_offline(db, args.checkpoints.as_deref()),
        None => Client::new(remote).and_then(|c| c.get(&["v1", "audit", "verify"], &[])),
    };
    match result {
        Ok(v) => {
            say!("{}", verification_text(args.output, &v));
            ExitCode::from(
                if v.get("ok").and_then(serde_json::Value::as_bool) == Some(true) {
                    0
                } else {
                    2
                },
            )
        }
        Err(e) => finish(Err(e)),
    }
}

/// The checkpoints of a witness file, one JSON object per line.
fn witness_file(path: &std::path::Path) -> Result<Vec<SignedCheckpoint>, ClientError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::Local(format!("cannot read `{}`: {e}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                ClientError::Local(format!(
                    "`{}` line {}: not a checkpoint: {e}",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

fn verify_offline(db: &str, witness: Option<&std::path::Path>) -> Result<Value, ClientError> {
    let witnessed = match witness {
        Some(path) => witness_file(path)?,
        None => Vec::new(),
    };
    if let Some(path) = db.strip_prefix("sqlite://") {
        // Verifying must never create an empty database where none was.
        if !std::path::Path::new(path).exists() {
            return Err(ClientError::Local(format!("`{path}` does not exist")));
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Local(format!("cannot start the async runtime: {e}")))?;
    let v = runtime
        .block_on(async {
            let store = Store::connect(db).await?;
            let v = bridle_server::checkpoints::verify_log(&store, &witnessed).await;
            store.close().await;
            v
        })
        .map_err(|e| ClientError::Local(e.to_string()))?;
    serde_json::to_value(v).map_err(|e| ClientError::Local(e.to_string()))
}

/// The same words whether the chain was read offline or by the server.
fn verification_text(output: Output, v: &Value) -> String {
    render(output, v, |v| {
        let checkpoint = match v["checkpoint_seq"].as_u64() {
            Some(seq) => format!(", checkpoint {seq}"),
            None => String::new(),
        };
        if v["ok"].as_bool() == Some(true) {
            format!(
                "ok: {} events, chain intact, head {}{checkpoint}\n",
                cell(&v["events"]),
                cell(&v["head"])
            )
        } else {
            let mut text = format!(
                "broken: the chain fails at seq {} ({} events read{checkpoint}); records from there on cannot be trusted\n",
                v["first_bad_seq"].as_u64().unwrap_or(0),
                cell(&v["events"])
            );
            for p in items(v, "problems") {
                text.push_str(&format!(
                    "  seq {}: {}\n",
                    cell(&p["seq"]),
                    problem_text(p["kind"].as_str().unwrap_or(""))
                ));
            }
            text
        }
    })
}

fn problem_text(kind: &str) -> &str {
    match kind {
        "altered" => "content does not match its hash",
        "unlinked" => "does not link to the record before it",
        "missing" => "missing (deleted)",
        "out_of_order" => "out of order",
        "downgraded" => "old-format record after a new-format one",
        "checkpoint_mismatch" => "differs from the signed checkpoint (chain rewritten)",
        "head_mismatch" => "differs from the stored head",
        "truncated" => {
            "the log ends here, before a checkpoint or the stored head (records removed)"
        }
        "bad_checkpoint" => "a checkpoint here does not verify (signature or fields)",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;
    use serde_json::json;

    fn parse(args: &[&str]) -> AuditArgs {
        let mut argv = vec!["bridle", "audit"];
        argv.extend(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Audit(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn verify_goes_to_the_server_unless_a_db_is_given() {
        let AuditCommand::Verify(v) = parse(&["verify"]).command else {
            panic!("not verify");
        };
        assert_eq!(v.db, None);
        let AuditCommand::Verify(v) = parse(&["verify", "--db", "sqlite://x.db"]).command else {
            panic!("not verify");
        };
        assert_eq!(v.db.as_deref(), Some("sqlite://x.db"));
        // A witness file is checked against the store, offline only.
        let mut argv = vec!["bridle", "audit", "verify", "--checkpoints", "w.jsonl"];
        assert!(Cli::try_parse_from(argv.clone()).is_err());
        argv.extend(["--db", "sqlite://x.db"]);
        assert!(Cli::try_parse_from(argv).is_ok());
    }

    #[test]
    fn filters_are_checked_before_anything_is_sent() {
        let a = parse(&[
            "list",
            "--agent",
            "swe-bot",
            "--type",
            "decision",
            "--since",
            "2026-01-01T00:00:00Z",
            "--limit",
            "5",
        ]);
        let AuditCommand::List(l) = a.command else {
            panic!("not list");
        };
        assert_eq!(
            l.filter.query(),
            vec![
                ("agent", "swe-bot".to_owned()),
                ("type", "decision".to_owned()),
                ("since", "2026-01-01T00:00:00Z".to_owned())
            ]
        );
        for bad in [
            ["list", "--type", "decisions"],
            ["list", "--since", "yesterday"],
            ["export", "--format", "csv"],
        ] {
            let mut argv = vec!["bridle", "audit"];
            argv.extend(bad);
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
        }
        assert!(matches!(
            parse(&["export", "--format", "ocsf", "--agent", "x"]).command,
            AuditCommand::Export(ExportArgs {
                format: Format::Ocsf,
                ..
            })
        ));
    }

    #[test]
    fn verification_reads_the_same_online_and_offline() {
        let ok = json!({"ok": true, "events": 20, "head": "ab12"});
        assert_eq!(
            verification_text(Output::Text, &ok),
            "ok: 20 events, chain intact, head ab12\n"
        );
        let broken = json!({"ok": false, "events": 7, "head": "ab12", "first_bad_seq": 8,
            "broken": [8, 9], "checkpoint_seq": 9,
            "problems": [{"seq": 8, "kind": "altered"}, {"seq": 9, "kind": "truncated"}]});
        let text = verification_text(Output::Text, &broken);
        assert!(
            text.starts_with("broken: the chain fails at seq 8 (7 events read, checkpoint 9)"),
            "{text}"
        );
        assert!(
            text.contains("  seq 8: content does not match its hash\n"),
            "{text}"
        );
        assert!(text.contains("  seq 9: the log ends here"), "{text}");
    }

    #[test]
    fn the_event_list_says_what_each_event_came_to() {
        let events = json!([
            {"seq": 4, "type": "outcome", "detail": {"status": "error"}},
            {"seq": 5, "type": "finding", "detail": {"op": "opened", "code": "wildcard_grant"}},
            {"seq": 6, "type": "lifecycle", "detail": {"state": "suspended", "reason": "r"}},
            {"seq": 7, "type": "token"}
        ]);
        let said: Vec<String> = events.as_array().unwrap().iter().map(outcome).collect();
        assert_eq!(said, ["error", "opened:wildcard_grant", "suspended", "-"]);
    }

    #[test]
    fn the_event_list_names_reason_codes() {
        let events = json!([{"seq": 3, "time": "t", "type": "decision", "actor": "agent:a",
            "agent": "a", "action": "x.y", "decision": "deny",
            "reasons": [{"code": "not_granted", "message": "m"}]}]);
        let text = list_text(events.as_array().unwrap());
        let row = text.lines().nth(1).unwrap();
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [
                "3",
                "t",
                "decision",
                "agent:a",
                "a",
                "x.y",
                "deny",
                "not_granted"
            ]
        );
    }
}
