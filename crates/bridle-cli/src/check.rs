//! `bridle check`: the decision engine on one manifest file, offline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bridle_core::compile::{CompileError, GuardrailError};
use bridle_core::decision::SourceRef;
use bridle_core::engine::{ActionRequest, AgentState, DecisionInput, Engine, NoApprovals, Subject};
use bridle_core::ledger::MemoryLedger;
use bridle_core::{CompiledAgent, Decision, Effect, Guardrails, Manifest, ManifestErrors};
use jiff::Timestamp;

use crate::Output;

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// The manifest (YAML or JSON).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// The tool (action) name, e.g. `procurement.create_purchase_request`.
    #[arg(long, required_unless_present = "replay")]
    action: Option<String>,
    /// The action's arguments as a JSON object.
    #[arg(long, default_value = "{}")]
    args: String,
    /// The data resource the action touches, e.g. `crm:cases/42`.
    #[arg(long)]
    resource: Option<String>,
    /// Decide as of this instant (RFC 3339), instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Treat this elevation as active (repeatable).
    #[arg(long = "elevation")]
    elevations: Vec<String>,
    /// Organisation guardrail policies (Cedar `forbid`s) to apply (repeatable).
    #[arg(long = "guardrails")]
    guardrails: Vec<PathBuf>,
    /// Instead of deciding one action: decide every recorded decision of
    /// `--agent` since `--since` again against the manifest, reading the
    /// audit log of the database `--db` (offline; changes nothing). Exit
    /// code 0 when none would change, 2 when some would.
    #[arg(long, requires_all = ["db", "agent"], conflicts_with_all = ["action", "resource", "at", "elevations"])]
    replay: bool,
    /// The database to replay from (`sqlite://PATH`, `postgres://…`).
    #[arg(long, requires = "replay")]
    db: Option<String>,
    /// The agent whose decisions are replayed.
    #[arg(long, requires = "replay")]
    agent: Option<String>,
    /// How far back to replay (`7d`, `24h`).
    #[arg(long, default_value = "7d")]
    since: String,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

const EXIT_BAD_INPUT: u8 = 1;

/// Why `bridle check` could not decide; each is printed after `error: `.
#[derive(Debug, thiserror::Error)]
enum CheckError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The rendered list of the manifest's errors.
    #[error("{0}")]
    Manifest(String),
    #[error(transparent)]
    Guardrails(#[from] GuardrailError),
    #[error("--args must be a JSON object, got `{0}`")]
    ArgsNotObject(serde_json::Value),
    #[error("--args is not valid JSON: {0}")]
    ArgsJson(serde_json::Error),
    #[error("--action `{0}` is not a tool name: use letters, digits and `_.:/-`")]
    Action(String),
    #[error("--at `{at}` is not an RFC 3339 instant: {source}")]
    At { at: String, source: jiff::Error },
    #[error("--elevation `{name}` is not defined in {file}")]
    Elevation { name: String, file: String },
    #[error(transparent)]
    Compile(#[from] CompileError),
}

pub(crate) fn run(args: &CheckArgs) -> ExitCode {
    if args.replay {
        return replay(args);
    }
    match decide(args) {
        Ok((decision, source)) => {
            match args.output {
                Output::Json => match decision_json(&decision) {
                    Ok(json) => say!("{}", crate::output::json(&json)),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(EXIT_BAD_INPUT);
                    }
                },
                Output::Text => print_text(&decision, &args.file, &source),
            }
            ExitCode::from(match decision.effect {
                Effect::Allow => 0,
                Effect::Deny => 2,
                Effect::ApprovalRequired => 3,
            })
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

/// The decision in the shape `POST /v1/decisions` answers (`decision`,
/// `reasons`, `obligations`), plus what only an offline check has:
/// `approval`, the approval rule that applies (approvers, minimum,
/// validity, key). No `decision_id` nor `approval_id`: nothing is recorded.
fn decision_json(decision: &Decision) -> Result<serde_json::Value, serde_json::Error> {
    let mut v = serde_json::to_value(decision)?;
    if let Some(map) = v.as_object_mut()
        && let Some(effect) = map.remove("effect")
    {
        map.insert("decision".into(), effect);
    }
    Ok(v)
}

/// `--replay`: the same report as `bridle agent replay`, made offline.
fn replay(args: &CheckArgs) -> ExitCode {
    let (Some(db), Some(agent)) = (&args.db, &args.agent) else {
        eprintln!("error: --replay needs --db and --agent");
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let report = guardrails(&args.guardrails)
        .map_err(|e| crate::client::ClientError::Local(e.to_string()))
        .and_then(|g| crate::usage::replay_offline(db, agent, &args.since, &args.file, &g));
    match report {
        Ok(v) => {
            say!(
                "{}",
                crate::output::render(args.output, &v, crate::usage::replay_text)
            );
            let changed = v
                .get("changed")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|c| !c.is_empty());
            ExitCode::from(if changed { 2 } else { 0 })
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn guardrails(paths: &[PathBuf]) -> Result<Guardrails, CheckError> {
    let mut guardrails = Guardrails::new();
    for path in paths {
        let text = read(path)?;
        guardrails.add(&path.display().to_string(), &text)?;
    }
    Ok(guardrails)
}

fn read(path: &Path) -> Result<String, CheckError> {
    std::fs::read_to_string(path).map_err(|source| CheckError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn decide(args: &CheckArgs) -> Result<(Decision, String), CheckError> {
    let source = read(&args.file)?;
    let file = args.file.display();
    let manifest = Manifest::from_source(&source)
        .map_err(|errs| CheckError::Manifest(manifest_errors(&file.to_string(), &errs)))?;
    let guardrails = guardrails(&args.guardrails)?;
    let action = args.action.as_deref().unwrap_or_default();
    let call_args = match serde_json::from_str::<serde_json::Value>(&args.args) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(other) => return Err(CheckError::ArgsNotObject(other)),
        Err(e) => return Err(CheckError::ArgsJson(e)),
    };
    if !bridle_core::id::is_tool_name(action) {
        return Err(CheckError::Action(action.to_owned()));
    }
    let now = match &args.at {
        Some(at) => at.parse::<Timestamp>().map_err(|source| CheckError::At {
            at: at.clone(),
            source,
        })?,
        None => Timestamp::now(),
    };
    // Warnings never fail the check; they go to stderr, before the decision.
    let tz = manifest
        .schedule
        .as_ref()
        .map_or(jiff::tz::TimeZone::UTC, |s| s.timezone.clone());
    for w in bridle_core::manifest::warnings(&manifest, now.to_zoned_datetime(tz).date()) {
        eprintln!("{}", warning_line(&file.to_string(), &w));
    }
    for name in &args.elevations {
        if !manifest.elevation.iter().any(|e| &e.name == name) {
            return Err(CheckError::Elevation {
                name: name.clone(),
                file: file.to_string(),
            });
        }
    }
    let agent = CompiledAgent::compile(manifest, &guardrails)?;
    let subjects = [Subject {
        agent: &agent,
        state: AgentState::Active,
        elevations: &args.elevations,
    }];
    let input = DecisionInput {
        subjects: &subjects,
        scope: None,
        action: ActionRequest {
            name: action,
            args: &call_args,
            resource: args.resource.as_deref(),
        },
        now,
    };
    let decision = Engine::new()
        .decide(&input, &MemoryLedger::new(), &NoApprovals)
        .decision;
    Ok((decision, source))
}

/// `FILE: invalid manifest, N errors` and one `FILE:LINE:COL: `path`: message`
/// line per error; `bridle agent apply` reports a bad file the same way.
pub(crate) fn manifest_errors(file: &str, errs: &ManifestErrors) -> String {
    let mut out = format!("{file}: {}", summary(errs.errors.len()));
    for e in &errs.errors {
        let at = if e.path.is_empty() {
            String::new()
        } else {
            format!("`{}`: ", e.path)
        };
        out.push_str(&format!(
            "\n  {file}:{}:{}: {at}{}",
            e.line, e.column, e.message
        ));
    }
    out
}

/// `warning: FILE:LINE: `path`: message`; `bridle agent apply` prints the
/// server's warnings the same way.
pub(crate) fn warning_line(file: &str, w: &bridle_core::manifest::Warning) -> String {
    match w.line {
        Some(line) => format!("warning: {file}:{line}: `{}`: {}", w.path, w.message),
        None => format!("warning: {file}: `{}`: {}", w.path, w.message),
    }
}

fn summary(n: usize) -> String {
    format!(
        "invalid manifest, {n} error{}",
        if n == 1 { "" } else { "s" }
    )
}

fn print_text(decision: &Decision, file: &Path, source: &str) {
    sayln!("{}", decision.effect);
    for r in &decision.reasons {
        sayln!("  {}: {}", r.code, r.message);
        if let Some(SourceRef {
            path,
            line: Some(line),
            ..
        }) = &r.source
        {
            let text = source
                .lines()
                .nth(line.saturating_sub(1))
                .unwrap_or("")
                .trim_end();
            sayln!("    --> {}:{line} ({path})", file.display());
            sayln!("     | {text}");
        }
    }
    for o in &decision.obligations {
        sayln!(
            "  obligation: {}",
            serde_json::to_value(o)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        );
    }
    if let Some(a) = &decision.approval {
        let who = a
            .approvers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        sayln!(
            "  approval: {} of [{who}], valid {}s, key {}",
            a.min_approvals,
            a.ttl_seconds,
            a.key.get(..16).unwrap_or(&a.key)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridle_core::decision::{Reason, ReasonCode};

    #[test]
    fn json_names_the_effect_decision_as_the_api_does() {
        let d = Decision {
            effect: Effect::Deny,
            reasons: vec![Reason {
                code: ReasonCode::NotGranted,
                message: "no grant".into(),
                source: None,
            }],
            obligations: Vec::new(),
            approval: None,
            consumes: None,
        };
        let v = decision_json(&d).unwrap();
        assert_eq!(v["decision"], "deny");
        assert!(v.get("effect").is_none(), "{v}");
        assert_eq!(v["reasons"][0]["code"], "not_granted");
        assert_eq!(v["obligations"], serde_json::json!([]));
    }
}
