//! `bridle agent show`: the agent's record, and what is going on with it
//! now: its active elevations, its pending approvals, its last activity.

use serde_json::Value;

use crate::client::Client;
use crate::output::{cell, fields, items};

/// The window `agent show` reads the last activity in.
const ACTIVITY_WINDOW: &str = "30d";

/// Adds to the record what `agent show` tells besides it, each from its own
/// endpoint: `active_elevations` (`GET /v1/agents/{id}/elevations?active=true`), `pending_approvals` (`GET /v1/approvals`) and
/// `last_activity` (`GET /v1/agents/{id}/usage`, over
/// [`ACTIVITY_WINDOW`]). What the caller may not read stays `null`.
pub(crate) fn add_activity(client: &Client, id: &str, v: &mut Value) {
    let elevations = crate::elevation::elevations(client, id, true)
        .ok()
        .map(Value::Array);
    let pending = client
        .get(&["v1", "approvals"], &[("state", "pending".to_owned())])
        .ok()
        .map(|a| {
            let mine: Vec<Value> = items(&a, "approvals")
                .iter()
                .filter(|a| a["agent"].as_str() == Some(id))
                .cloned()
                .collect();
            Value::Array(mine)
        });
    let usage = client
        .get(
            &["v1", "agents", id, "usage"],
            &[("window", ACTIVITY_WINDOW.to_owned())],
        )
        .ok();
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "active_elevations".into(),
            elevations.unwrap_or(Value::Null),
        );
        map.insert("pending_approvals".into(), pending.unwrap_or(Value::Null));
        map.insert(
            "last_activity".into(),
            usage
                .and_then(|u| u.get("last_activity").cloned())
                .unwrap_or(Value::Null),
        );
    }
}

/// `none`, `unknown` (not readable by the caller), or the entries joined.
fn listed(v: &Value, entry: impl Fn(&Value) -> String) -> String {
    match v.as_array() {
        None => "unknown (not visible to you)".into(),
        Some(list) if list.is_empty() => "none".into(),
        Some(list) => list.iter().map(entry).collect::<Vec<_>>().join(", "),
    }
}

pub(crate) fn show_text(v: &Value) -> String {
    let mut state = cell(&v["state"]);
    if let Some(reason) = v["state_reason"].as_str().filter(|r| !r.is_empty()) {
        state.push_str(&format!(" ({reason})"));
    }
    let tools: Vec<String> = items(&v["manifest"], "tools")
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    let mut pairs = vec![
        ("id", cell(&v["id"])),
        ("version", cell(&v["version"])),
        ("state", state),
        ("owner", cell(&v["owner"])),
        ("environment", cell(&v["environment"])),
        ("expires", cell(&v["expires"])),
        ("flags", cell(&v["flags"])),
        ("last review", cell(&v["last_review_at"])),
        ("created", cell(&v["created_at"])),
        ("updated", cell(&v["updated_at"])),
    ];
    if !tools.is_empty() {
        pairs.push(("tools", tools.join(", ")));
    }
    if v.get("last_activity").is_some() {
        pairs.push((
            "active elevations",
            listed(&v["active_elevations"], |e| {
                format!(
                    "{} until {} ({})",
                    cell(&e["name"]),
                    cell(&e["expires_at"]),
                    cell(&e["id"])
                )
            }),
        ));
        pairs.push((
            "pending approvals",
            listed(&v["pending_approvals"], |a| {
                let action = cell(&a["action"]);
                let what = match a["kind"].as_str() {
                    Some("elevation") => format!(
                        "elevation {}",
                        action.strip_prefix("elevation:").unwrap_or(&action)
                    ),
                    Some("change") => "manifest change".to_owned(),
                    _ => action,
                };
                format!("{} {what}", cell(&a["id"]))
            }),
        ));
        let last = match &v["last_activity"] {
            Value::Null => format!("none in {ACTIVITY_WINDOW} (or not visible to you)"),
            t => cell(t),
        };
        pairs.push(("last activity", last));
    }
    fields(&pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn show_lists_elevations_pending_approvals_and_last_activity() {
        let mut v = json!({"id": "ir-bot", "version": 1, "state": "active", "flags": [],
            "manifest": {"tools": []},
            "active_elevations": [{"id": "elv_a", "name": "identity-write", "state": "active",
                                   "expires_at": "2026-12-01T10:31:00Z"}],
            "pending_approvals": [
                {"id": "apr_2", "kind": "elevation", "agent": "ir-bot", "action": "elevation:quarantine"},
                {"id": "apr_3", "kind": "action", "agent": "ir-bot", "action": "identity.disable_user"}],
            "last_activity": "2026-12-01T10:02:00Z"});
        let text = show_text(&v);
        let line = |k: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{k}:")))
                .map(|l| l.split_once(':').unwrap().1.trim().to_owned())
                .unwrap_or_else(|| panic!("no `{k}` in:\n{text}"))
        };
        assert_eq!(
            line("active elevations"),
            "identity-write until 2026-12-01T10:31:00Z (elv_a)"
        );
        assert_eq!(
            line("pending approvals"),
            "apr_2 elevation quarantine, apr_3 identity.disable_user"
        );
        assert_eq!(line("last activity"), "2026-12-01T10:02:00Z");
        v["active_elevations"] = Value::Null;
        v["pending_approvals"] = json!([]);
        v["last_activity"] = Value::Null;
        let text = show_text(&v);
        assert!(
            text.contains("active elevations: unknown (not visible to you)\n"),
            "{text}"
        );
        assert!(text.contains("pending approvals: none\n"), "{text}");
        assert!(text.contains("last activity:     none in 30d"), "{text}");
    }
}
