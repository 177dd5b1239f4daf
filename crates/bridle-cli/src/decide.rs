//! `bridle decide`: ask the running server for a decision (`POST
//! /v1/decisions`) as an agent, or as a `pep` forwarding an agent's token.
//! Exit codes as `bridle check`: 0 allow, 2 deny, 3 approval_required, 1
//! for bad input or any error.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Map, Value, json};

use crate::Output;
use crate::client::{Client, ClientError, Remote};
use crate::output::{cell, items, render};
use crate::secret::{AGENT_TOKEN_ENV, AgentToken};

#[derive(Debug, clap::Args)]
pub(crate) struct DecideArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(flatten)]
    agent_token: AgentToken,
    /// The tool (action) name, e.g. `procurement.create_purchase_request`.
    #[arg(long)]
    action: String,
    /// The action's arguments as a JSON object.
    #[arg(long, default_value = "{}", conflicts_with = "args_file")]
    args: String,
    /// The arguments from a JSON file instead.
    #[arg(long, value_name = "FILE")]
    args_file: Option<PathBuf>,
    /// The data resource the action touches, e.g. `crm:cases/42`.
    #[arg(long)]
    resource: Option<String>,
    /// Ask as a `pep` principal: `--token` is its API key and the agent's
    /// token goes in the body (`agent_token`).
    #[arg(long)]
    pep: bool,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

const EXIT_ERROR: u8 = 1;

pub(crate) fn run(args: &DecideArgs) -> ExitCode {
    match execute(args) {
        Ok(v) => {
            say!("{}", render(args.output, &v, text));
            match exit_code(&v) {
                Some(code) => ExitCode::from(code),
                None => {
                    eprintln!(
                        "error: the answer has no known `decision`: {}",
                        v.get("decision").unwrap_or(&Value::Null)
                    );
                    ExitCode::from(EXIT_ERROR)
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// 0 allow, 2 deny, 3 approval_required.
fn exit_code(v: &Value) -> Option<u8> {
    match v["decision"].as_str()? {
        "allow" => Some(0),
        "deny" => Some(2),
        "approval_required" => Some(3),
        _ => None,
    }
}

/// `--args` (or `--args-file`) as a JSON object; a file's error names its
/// line and column.
fn call_args(args: &DecideArgs) -> Result<Map<String, Value>, ClientError> {
    let (text, place) = match &args.args_file {
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| ClientError::Local(format!("cannot read `{name}`: {e}")))?;
            (text, name)
        }
        None => (args.args.clone(), "--args".to_owned()),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ClientError::Local(format!(
            "{place} must be a JSON object, got `{other}`"
        ))),
        Err(e) if args.args_file.is_some() => Err(ClientError::Local(format!(
            "{place}:{}:{}: not valid JSON: {e}",
            e.line(),
            e.column()
        ))),
        Err(e) => Err(ClientError::Local(format!(
            "{place} is not valid JSON: {e}"
        ))),
    }
}

/// The request body; with `--pep`, the agent's token rides in it.
fn body(args: &DecideArgs, call: Map<String, Value>, forwarded: Option<&str>) -> Value {
    let mut body = Map::new();
    body.insert("action".into(), json!(args.action));
    body.insert("args".into(), Value::Object(call));
    if let Some(r) = &args.resource {
        body.insert("resource".into(), json!(r));
    }
    if let Some(t) = forwarded {
        body.insert("agent_token".into(), json!(t));
    }
    Value::Object(body)
}

fn execute(args: &DecideArgs) -> Result<Value, ClientError> {
    let call = call_args(args)?;
    let agent_token = args.agent_token.read()?.ok_or_else(|| {
        ClientError::Local(format!(
            "no agent token: pass --agent-token-file FILE or set {AGENT_TOKEN_ENV} (`bridle token` prints one)"
        ))
    })?;
    let (remote, forwarded) = if args.pep {
        if args.remote.token.is_none() {
            return Err(ClientError::Local(
                "--pep needs the pep's API key in --token or BRIDLE_TOKEN".into(),
            ));
        }
        (args.remote.clone(), Some(agent_token.expose().to_owned()))
    } else {
        let remote = Remote {
            token: Some(agent_token),
            ..args.remote.clone()
        };
        (remote, None)
    };
    let body = body(args, call, forwarded.as_deref());
    Client::new(&remote)?.post(&["v1", "decisions"], body)
}

/// The decision, each reason with the manifest element that decided, the
/// obligations, the approval to wait for, and the decision's id.
fn text(v: &Value) -> String {
    let mut out = format!("{}\n", cell(&v["decision"]));
    for r in items(v, "reasons") {
        out.push_str(&format!(
            "  {}: {}\n",
            cell(&r["code"]),
            cell(&r["message"])
        ));
        let source = &r["source"];
        if let Some(path) = source["path"].as_str() {
            let line = source["line"]
                .as_u64()
                .map(|l| format!(", line {l}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "    --> {} {path}{line}\n",
                cell(&source["agent"])
            ));
        }
    }
    for o in items(v, "obligations") {
        out.push_str(&format!("  obligation: {}\n", cell(o)));
    }
    if let Some(id) = v["approval_id"].as_str() {
        out.push_str(&format!(
            "  approval: {id} (bridle approvals approve {id})\n"
        ));
    }
    out.push_str(&format!("  decision id: {}\n", cell(&v["decision_id"])));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> DecideArgs {
        let mut argv = vec!["bridle", "decide"];
        argv.extend(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Decide(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_body_is_the_api_request() {
        let a = parse(&[
            "--action",
            "procurement.create_purchase_request",
            "--args",
            r#"{"vendor": "acme", "amount": 7000}"#,
            "--resource",
            "erp:vendors/acme",
        ]);
        let b = body(&a, call_args(&a).unwrap(), None);
        assert_eq!(
            b,
            json!({"action": "procurement.create_purchase_request",
                   "args": {"vendor": "acme", "amount": 7000},
                   "resource": "erp:vendors/acme"})
        );
        let b = body(&a, call_args(&a).unwrap(), Some("eyJ"));
        assert_eq!(b["agent_token"], "eyJ");
    }

    #[test]
    fn bad_arguments_are_refused_before_anything_is_sent() {
        let a = parse(&["--action", "x", "--args", "[1]"]);
        let err = call_args(&a).unwrap_err().to_string();
        assert_eq!(err, "--args must be a JSON object, got `[1]`");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("args.json");
        std::fs::write(&path, "{\n  \"amount\": 70 00\n}").unwrap();
        let a = parse(&["--action", "x", "--args-file", path.to_str().unwrap()]);
        let err = call_args(&a).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:2:", path.display())), "{err}");
    }

    #[test]
    fn exit_codes_follow_check() {
        for (d, code) in [
            ("allow", Some(0)),
            ("deny", Some(2)),
            ("approval_required", Some(3)),
            ("maybe", None),
        ] {
            assert_eq!(exit_code(&json!({"decision": d})), code, "{d}");
        }
    }

    #[test]
    fn the_text_names_reasons_rule_approval_and_id() {
        let v = json!({"decision": "approval_required", "decision_id": "dec_1",
            "reasons": [{"code": "approval_required", "message": "amount over 5000",
                "source": {"agent": "procurement-bot", "path": "tools[0].approval", "line": 14}}],
            "obligations": ["log_retrieval"], "approval_id": "apr_9"});
        assert_eq!(
            text(&v),
            "approval_required\n  approval_required: amount over 5000\n    --> procurement-bot tools[0].approval, line 14\n  obligation: log_retrieval\n  approval: apr_9 (bridle approvals approve apr_9)\n  decision id: dec_1\n"
        );
    }
}
