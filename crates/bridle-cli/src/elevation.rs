//! `bridle agent elevation`: ask for just-in-time extra scope (`POST
//! /v1/agents/{id}/elevations`, with the agent's own token or its owner's
//! API key), list an agent's elevations (`GET`, admin, auditor, the owner
//! or the agent itself) and end one early (`POST
//! …/elevations/{elevation_id}/end`, admin, the owner or the agent).
//! Otherwise an elevation ends by itself at `expires_at` (`expired`), or
//! when the agent is retired.

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
    /// denied, expired). With `--agent-token-file` the agent lists its own.
    List {
        id: String,
        /// Only the active ones.
        #[arg(long)]
        active: bool,
        #[command(flatten)]
        agent_token: AgentToken,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// End a pending or active elevation now (a pending one's approval is
    /// withdrawn). With `--agent-token-file` the agent gives up its own;
    /// otherwise `--token` is its owner's or an admin's API key.
    End {
        id: String,
        /// The elevation's id (`elv_…`, from `request` or `list`).
        elevation_id: String,
        /// Why; recorded in the audit log.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        agent_token: AgentToken,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

/// `remote`, with the agent's token instead when one is given.
fn as_agent(remote: &Remote, agent_token: &AgentToken) -> Result<Remote, ClientError> {
    Ok(match agent_token.read()? {
        Some(t) => Remote {
            token: Some(t),
            ..remote.clone()
        },
        None => remote.clone(),
    })
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
            let remote = as_agent(remote, agent_token)?;
            let body = json!({"name": name, "duration": duration, "reason": reason});
            let v = Client::new(&remote)?.post(&["v1", "agents", id, "elevations"], body)?;
            Ok(render(*output, &v, |v| requested_text(name, v)))
        }
        ElevationCommand::List {
            id,
            active,
            agent_token,
            output,
        } => {
            let client = Client::new(&as_agent(remote, agent_token)?)?;
            let v = json!({ "elevations": elevations(&client, id, *active)? });
            Ok(render(*output, &v, |v| list_text(items(v, "elevations"))))
        }
        ElevationCommand::End {
            id,
            elevation_id,
            reason,
            agent_token,
            output,
        } => {
            let client = Client::new(&as_agent(remote, agent_token)?)?;
            let path = ["v1", "agents", id, "elevations", elevation_id, "end"];
            let v = client.post(&path, json!({ "reason": reason }))?;
            Ok(render(*output, &v, ended_text))
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

/// The agent's elevations, oldest first (`GET /v1/agents/{id}/elevations`,
/// with `?active=true` only the active ones).
pub(crate) fn elevations(
    client: &Client,
    agent: &str,
    active_only: bool,
) -> Result<Vec<Value>, ClientError> {
    let query = if active_only {
        vec![("active", "true".to_owned())]
    } else {
        Vec::new()
    };
    let v = client.get(&["v1", "agents", agent, "elevations"], &query)?;
    Ok(items(&v, "elevations").to_vec())
}

fn ended_text(v: &Value) -> String {
    format!(
        "elevation `{}` ({}) is {} (ended by {}: {})\n",
        cell(&v["name"]),
        cell(&v["id"]),
        cell(&v["state"]),
        cell(&v["ended_by"]),
        cell(&v["end_reason"])
    )
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

    #[test]
    fn the_list_shows_each_elevation_in_a_row() {
        let list = vec![json!({
            "id": "elv_a", "name": "identity-write", "state": "pending", "approval_id": "apr_1",
            "requested_by": "agent:ir-bot", "reason": "incident 42", "created_at": "2026-12-01T10:00:00Z",
        })];
        let text = list_text(&list);
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
    fn an_end_says_who_ended_it_and_why() {
        let v = json!({"id": "elv_a", "name": "identity-write", "state": "ended",
                       "ended_by": "principal:dave", "end_reason": "incident closed"});
        assert_eq!(
            ended_text(&v),
            "elevation `identity-write` (elv_a) is ended (ended by principal:dave: incident closed)\n"
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
