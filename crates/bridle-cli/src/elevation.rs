//! `bridle agent elevation`: ask for just-in-time extra scope (`POST
//! /v1/agents/{id}/elevations`, with the agent's own token or its owner's
//! API key) and list an agent's elevations.
//!
//! The API has no endpoint that lists elevations or ends one early: the
//! list is read from the agent's audit log (`elevation` events: requested,
//! activated), with each pending one's approval looked up for denial or
//! expiry; it needs what reading that log needs (`admin`, `auditor`, or the
//! agent's owner). An elevation ends by itself at `expires_at`, or when
//! the agent is retired.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::Output;
use crate::client::{Client, ClientError, Remote};
use crate::output::{cell, items, render, table};
use crate::secret::AgentToken;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ElevationCommand {
    /// Ask for one of the manifest's elevations: granted at once when its
    /// `auto_grant_when` holds, otherwise put to its approvers. With
    /// `--agent-token-file` (or `BRIDLE_AGENT_TOKEN`) the agent asks
    /// itself; otherwise `--token` is its owner's API key.
    Request {
        id: String,
        /// The elevation's `name` in the manifest.
        name: String,
        /// How long, at most the elevation's `max_duration` (`30m`, `2h`).
        #[arg(long)]
        duration: String,
        /// Why; recorded with the request and shown to the approvers.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        agent_token: AgentToken,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// The agent's elevations with their state (pending, active, ended,
    /// denied), read from its audit log.
    List {
        id: String,
        /// Only the active ones.
        #[arg(long)]
        active: bool,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

pub(crate) fn execute(remote: &Remote, command: &ElevationCommand) -> Result<String, ClientError> {
    match command {
        ElevationCommand::Request {
            id,
            name,
            duration,
            reason,
            agent_token,
            output,
        } => {
            let remote = match agent_token.read()? {
                Some(t) => Remote {
                    token: Some(t),
                    ..remote.clone()
                },
                None => remote.clone(),
            };
            let body = json!({"name": name, "duration": duration, "reason": reason});
            let v = Client::new(&remote)?.post(&["v1", "agents", id, "elevations"], body)?;
            Ok(render(*output, &v, |v| requested_text(name, v)))
        }
        ElevationCommand::List { id, active, output } => {
            let client = Client::new(remote)?;
            let mut list = elevations(&client, id, Timestamp::now())?;
            if *active {
                list.retain(|e| e["state"] == "active");
            }
            let v = json!({ "elevations": list });
            Ok(render(*output, &v, |v| list_text(items(v, "elevations"))))
        }
    }
}

fn requested_text(name: &str, v: &Value) -> String {
    match v["state"].as_str() {
        Some("active") => format!(
            "elevation `{name}` ({}) is active until {}\n",
            cell(&v["id"]),
            cell(&v["expires_at"])
        ),
        _ => {
            let approval = cell(&v["approval_id"]);
            format!(
                "elevation `{name}` ({}) is {}: awaits approval {approval} (bridle approvals approve {approval})\n",
                cell(&v["id"]),
                cell(&v["state"])
            )
        }
    }
}

/// How many pages of 1000 `elevation` events are read at most.
const PAGES: usize = 10;

/// The agent's elevations, oldest first, as of `now`.
pub(crate) fn elevations(
    client: &Client,
    agent: &str,
    now: Timestamp,
) -> Result<Vec<Value>, ClientError> {
    let record = client.get(&["v1", "agents", agent], &[])?;
    let mut events = Vec::new();
    let mut after: Option<u64> = None;
    for _ in 0..PAGES {
        let mut q = vec![
            ("agent", agent.to_owned()),
            ("type", "elevation".to_owned()),
            ("limit", "1000".to_owned()),
        ];
        if let Some(seq) = after {
            q.push(("after", seq.to_string()));
        }
        let page = client.get(&["v1", "audit"], &q)?;
        let got = items(&page, "events");
        events.extend_from_slice(got);
        match got.last().and_then(|e| e["seq"].as_u64()) {
            Some(seq) if got.len() >= 1000 => after = Some(seq),
            _ => break,
        }
    }
    let retired = record.get("state").and_then(Value::as_str) == Some("retired");
    let mut list = fold(&events, now, retired);
    // A pending elevation whose approval was denied, expired or cancelled
    // never starts; the approval says so.
    for e in &mut list {
        if e["state"] != "pending" {
            continue;
        }
        let Some(approval) = e["approval_id"].as_str().map(str::to_owned) else {
            continue;
        };
        if let Ok(a) = client.get(&["v1", "approvals", &approval], &[])
            && let Some(state) = a.get("state").and_then(Value::as_str)
            && state != "pending"
            && state != "approved"
        {
            e["state"] = json!(if state == "denied" { "denied" } else { "ended" });
        }
    }
    Ok(list)
}

/// The elevations the `elevation` events tell of: each `request` opens one
/// (active at once when auto-granted), an `activate` starts it; an active
/// one past `expires_at`, or any of a retired agent, has ended.
fn fold(events: &[Value], now: Timestamp, retired: bool) -> Vec<Value> {
    let mut list: Vec<Value> = Vec::new();
    for ev in events {
        let d = &ev["detail"];
        let Some(id) = d["elevation_id"].as_str() else {
            continue;
        };
        match d["op"].as_str() {
            Some("request") => {
                // An auto-granted one runs from its request.
                let expires = (d["state"] == "active")
                    .then(|| {
                        let at = ev["time"].as_str()?.parse::<Timestamp>().ok()?;
                        let secs = d["duration_secs"].as_i64()?;
                        at.checked_add(SignedDuration::from_secs(secs)).ok()
                    })
                    .flatten();
                list.push(json!({
                    "id": id,
                    "name": d["name"],
                    "state": d["state"],
                    "reason": d["reason"],
                    "duration_secs": d["duration_secs"],
                    "approval_id": d["approval_id"],
                    "requested_by": ev["actor"],
                    "requested_at": ev["time"],
                    "expires_at": expires.map(|t| t.to_string()),
                }));
            }
            Some("activate") => {
                if let Some(e) = list.iter_mut().find(|e| e["id"] == id) {
                    e["state"] = json!("active");
                    e["expires_at"] = d["expires_at"].clone();
                }
            }
            _ => {}
        }
    }
    for e in &mut list {
        let past = e["expires_at"]
            .as_str()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_some_and(|t| t <= now);
        let open = e["state"] == "active" || e["state"] == "pending";
        if (e["state"] == "active" && past) || (retired && open) {
            e["state"] = json!("ended");
        }
    }
    list
}

pub(crate) fn list_text(elevations: &[Value]) -> String {
    let rows: Vec<Vec<String>> = elevations
        .iter()
        .map(|e| {
            [
                "id",
                "name",
                "state",
                "expires_at",
                "approval_id",
                "requested_by",
                "reason",
            ]
            .iter()
            .map(|k| cell(&e[*k]))
            .collect()
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "STATE",
            "EXPIRES",
            "APPROVAL",
            "REQUESTED BY",
            "REASON",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<Value> {
        serde_json::from_value(json!([
            {"seq": 1, "time": "2026-12-01T10:00:00Z", "type": "elevation", "actor": "agent:ir-bot",
             "detail": {"op": "request", "elevation_id": "elv_a", "name": "identity-write", "state": "pending",
                        "reason": "incident 42", "duration_secs": 1800, "approval_id": "apr_1"}},
            {"seq": 2, "time": "2026-12-01T10:00:05Z", "type": "elevation", "actor": "agent:ir-bot",
             "detail": {"op": "request", "elevation_id": "elv_b", "name": "quarantine", "state": "active",
                        "reason": "sev1", "duration_secs": 600, "approval_id": null}},
            {"seq": 3, "time": "2026-12-01T10:01:00Z", "type": "elevation", "actor": "principal:sec-lead",
             "detail": {"op": "activate", "elevation_id": "elv_a", "name": "identity-write",
                        "expires_at": "2026-12-01T10:31:00Z", "approval_id": "apr_1"}},
        ]))
        .unwrap()
    }

    #[test]
    fn requests_and_activations_make_the_states() {
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        let list = fold(&events(), at("2026-12-01T10:05:00Z"), false);
        assert_eq!(list.len(), 2);
        assert_eq!(
            (list[0]["state"].as_str(), list[0]["expires_at"].as_str()),
            (Some("active"), Some("2026-12-01T10:31:00Z"))
        );
        assert_eq!(list[1]["state"], "active");
        assert_eq!(list[1]["expires_at"], "2026-12-01T10:10:05Z");
        // Later, the auto-granted one has ended; the approved one not yet.
        let list = fold(&events(), at("2026-12-01T10:20:00Z"), false);
        assert_eq!(
            (list[0]["state"].as_str(), list[1]["state"].as_str()),
            (Some("active"), Some("ended"))
        );
        // A retired agent's elevations have all ended.
        let list = fold(&events(), at("2026-12-01T10:05:00Z"), true);
        assert!(list.iter().all(|e| e["state"] == "ended"), "{list:?}");
        let text = list_text(&fold(&events()[..1], at("2026-12-01T10:05:00Z"), false));
        let row: Vec<&str> = text
            .lines()
            .nth(1)
            .unwrap()
            .split("  ")
            .filter(|c| !c.is_empty())
            .map(str::trim)
            .collect();
        assert_eq!(
            row,
            [
                "elv_a",
                "identity-write",
                "pending",
                "-",
                "apr_1",
                "agent:ir-bot",
                "incident 42"
            ]
        );
    }

    #[test]
    fn a_request_says_active_or_which_approval_to_vote_on() {
        let v = json!({"id": "elv_b", "state": "active", "expires_at": "2026-12-01T10:10:05Z"});
        assert_eq!(
            requested_text("quarantine", &v),
            "elevation `quarantine` (elv_b) is active until 2026-12-01T10:10:05Z\n"
        );
        let v = json!({"id": "elv_a", "state": "pending", "approval_id": "apr_1"});
        assert_eq!(
            requested_text("identity-write", &v),
            "elevation `identity-write` (elv_a) is pending: awaits approval apr_1 (bridle approvals approve apr_1)\n"
        );
    }
}
