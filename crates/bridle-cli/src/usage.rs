//! What an agent actually did and what a candidate manifest would change:
//! `bridle agent usage`, `bridle agent replay`, and `bridle check --replay`
//! (offline, on the database itself). Online and offline print the same.

use std::collections::HashMap;
use std::path::Path;

use bridle_core::manifest::units::parse_duration;
use bridle_core::{CompiledAgent, Engine, Guardrails, Manifest};
use bridle_server::service::replay::{chain_agents, decisions};
use bridle_server::views::replay::ReplayView;
use bridle_store::{RegistryRead as _, Store};
use serde_json::Value;

use crate::client::ClientError;
use crate::output::{cell, items, table};

/// `bridle agent usage`: one row per grant, then what no grant covers.
pub(crate) fn usage_text(v: &Value) -> String {
    let mut out = format!(
        "usage of the last {} (since {}), last activity {}\n",
        cell(&v["window"]),
        cell(&v["since"]),
        cell(&v["last_activity"])
    );
    let rows: Vec<Vec<String>> = items(v, "tools")
        .iter()
        .map(|g| {
            vec![
                cell(&g["path"]),
                cell(&g["grant"]),
                cell(&g["allowed"]),
                cell(&g["denied"]),
                cell(&g["approvals"]),
                cell(&g["last_used"]),
                args_text(&g["args"]),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "PATH",
            "GRANT",
            "ALLOWED",
            "DENIED",
            "APPROVALS",
            "LAST USED",
            "ARGUMENTS SEEN",
        ],
        &rows,
    ));
    let unused = items(v, "unused");
    if !unused.is_empty() {
        out.push_str(&format!("unused: {}\n", cell(&v["unused"])));
    }
    for u in items(v, "ungranted") {
        out.push_str(&format!(
            "no grant covers `{}`: {} decision(s), {} denied, last {}\n",
            cell(&u["action"]),
            cell(&u["uses"]),
            cell(&u["denied"]),
            cell(&u["last_used"])
        ));
    }
    out
}

/// `amount 120..4999, vendor {acme, globex}`.
fn args_text(args: &Value) -> String {
    let Some(args) = args.as_object() else {
        return "-".into();
    };
    let parts: Vec<String> = args
        .iter()
        .map(|(name, a)| {
            if a["redacted"] == Value::Bool(true) {
                return format!("{name} (sensitive)");
            }
            let mut part = name.clone();
            if let (Some(lo), Some(hi)) = (a["min"].as_i64(), a["max"].as_i64()) {
                part.push_str(&format!(" {lo}..{hi}"));
            } else if let Some(values) = a["values"].as_array().filter(|v| !v.is_empty()) {
                let shown: Vec<String> = values.iter().map(cell).collect();
                let more = if a["more"] == Value::Bool(true) {
                    ", …"
                } else {
                    ""
                };
                part.push_str(&format!(" {{{}{more}}}", shown.join(", ")));
            }
            part
        })
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// A suggestion: its evidence, then the diff from the version in force.
pub(crate) fn suggestion_text(v: &Value) -> String {
    let evidence = items(v, "evidence");
    if evidence.is_empty() {
        return format!(
            "no narrowing suggested from the last {}: everything granted was used as granted\n",
            cell(&v["window"])
        );
    }
    let mut out = format!(
        "suggested from the last {} (since {}):\n",
        cell(&v["window"]),
        cell(&v["since"])
    );
    for e in evidence {
        out.push_str(&format!(
            "  {}: {}\n",
            cell(&e["path"]),
            cell(&e["message"])
        ));
    }
    out.push('\n');
    out.push_str(v["unified"].as_str().unwrap_or_default());
    out.push_str(
        "\n`--write FILE` saves the suggested manifest: replay it (`bridle agent replay ID -f FILE`), then apply it\n",
    );
    out
}

/// A replay: the counts, then each changed decision.
pub(crate) fn replay_text(v: &Value) -> String {
    let mut out = format!(
        "replayed {} decisions of `{}` since {}: {} unchanged, {} changed, {} skipped\n",
        cell(&v["decisions"]),
        cell(&v["agent"]),
        cell(&v["since"]),
        cell(&v["unchanged"]),
        items(v, "changed").len(),
        cell(&v["skipped"])
    );
    if let Some(summary) = v["summary"].as_object() {
        for (kind, n) in summary {
            let note = match kind.as_str() {
                k if k.starts_with("allow_to_") => " (would break the agent)",
                k if k.ends_with("_to_allow") => " (would widen it)",
                _ => "",
            };
            out.push_str(&format!("  {kind}: {}{note}\n", cell(n)));
        }
    }
    let rows: Vec<Vec<String>> = items(v, "changed")
        .iter()
        .map(|c| {
            let why = items(c, "reasons")
                .first()
                .map(|r| cell(&r["code"]))
                .unwrap_or_else(|| "-".into());
            vec![
                cell(&c["time"]),
                cell(&c["decision_id"]),
                cell(&c["action"]),
                format!("{} -> {}", cell(&c["from"]), cell(&c["to"])),
                why,
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push_str(&table(
            &["TIME", "DECISION", "ACTION", "CHANGE", "WHY"],
            &rows,
        ));
    }
    out
}

/// The JSON of a replay made offline, on the database at `db`: the same
/// document `POST /v1/agents/{id}/replay` answers.
pub(crate) fn replay_offline(
    db: &str,
    agent: &str,
    since: &str,
    candidate: &Path,
    guardrails: &Guardrails,
) -> Result<Value, ClientError> {
    let local = |e: &dyn std::fmt::Display| ClientError::Local(e.to_string());
    if let Some(path) = db.strip_prefix("sqlite://") {
        // A replay must never create an empty database where none was.
        if !Path::new(path).exists() {
            return Err(ClientError::Local(format!("`{path}` does not exist")));
        }
    }
    let window = parse_duration(since)
        .map_err(|e| ClientError::Local(format!("--since `{since}`: {e} (e.g. `7d`, `24h`)")))?;
    let agent_id = agent
        .parse::<bridle_core::id::AgentId>()
        .map_err(|e| ClientError::Local(format!("--agent `{agent}`: {e}")))?;
    let name = candidate.display().to_string();
    let source = std::fs::read_to_string(candidate)
        .map_err(|e| ClientError::Local(format!("cannot read `{name}`: {e}")))?;
    let manifest = Manifest::from_source(&source)
        .map_err(|errs| ClientError::Local(crate::check::manifest_errors(&name, &errs)))?;
    if manifest.agent != agent_id {
        return Err(ClientError::Local(format!(
            "{name}: the candidate is for `{}`, not `{agent}`",
            manifest.agent
        )));
    }
    let compiled = CompiledAgent::compile(manifest, guardrails).map_err(|e| local(&e))?;
    let now = jiff::Timestamp::now();
    let start = now.checked_sub(window).unwrap_or(jiff::Timestamp::MIN);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Local(format!("cannot start the async runtime: {e}")))?;
    let (events, rows) = runtime.block_on(async {
        let store = Store::connect(db).await.map_err(|e| local(&e))?;
        let found = store.agent(&agent_id).await.map_err(|e| local(&e))?;
        if found.is_none() {
            store.close().await;
            return Err(ClientError::Local(format!("no agent `{agent}` in {db}")));
        }
        let events = decisions(&store, &agent_id, start)
            .await
            .map_err(|e| local(&e))?;
        let rows = chain_agents(&store, &agent_id, &events)
            .await
            .map_err(|e| local(&e))?;
        store.close().await;
        Ok((events, rows))
    })?;
    let mut others = HashMap::new();
    for row in rows {
        let m = Manifest::from_source(&row.source).map_err(|e| local(&e))?;
        others.insert(
            row.id.to_string(),
            CompiledAgent::compile(m, guardrails).map_err(|e| local(&e))?,
        );
    }
    let report = bridle_core::replay::replay(&Engine::new(), &compiled, &others, &events);
    serde_json::to_value(ReplayView::new(
        agent.to_owned(),
        since.to_owned(),
        start,
        report,
    ))
    .map_err(|e| local(&e))
}
