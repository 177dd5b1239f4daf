//! Audit events as OCSF 1.1 "API Activity" records (class 6003, category 6
//! Application Activity), for SIEMs that ingest OCSF. Every field Bridle
//! has no OCSF place for stays in `unmapped`, which holds the whole original
//! event (including `seq`, `hash` and `prev_hash`, so the chain can still be
//! checked from an export).

use serde_json::{Value, json};

const CLASS_UID: u64 = 6003;
const CATEGORY_UID: u64 = 6;
const OCSF_VERSION: &str = "1.1.0";

/// OCSF API Activity `activity_id`s.
const CREATE: u64 = 1;
const UPDATE: u64 = 3;
const DELETE: u64 = 4;
const OTHER: u64 = 99;

/// One audit event (as `GET /v1/audit` returns it) as an OCSF record.
pub(crate) fn to_ocsf(event: &Value) -> Value {
    let kind = text(event, "type").unwrap_or("unknown");
    let op = event.pointer("/detail/op").and_then(Value::as_str);
    let activity_id = activity(kind, op);
    let activity_name = match activity_id {
        CREATE => "Create",
        UPDATE => "Update",
        DELETE => "Delete",
        _ => kind,
    };
    let (status_id, status) = status(event);
    let (severity_id, severity) = severity(event);
    let reasons: Vec<&str> = event
        .get("reasons")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| text(r, "code"))
        .collect();
    let operation = match (text(event, "action"), op) {
        (Some(action), _) => action.to_owned(),
        (None, Some(op)) => format!("{kind}.{op}"),
        (None, None) => kind.to_owned(),
    };
    let time = text(event, "time")
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_millisecond());

    let mut record = json!({
        "class_uid": CLASS_UID,
        "class_name": "API Activity",
        "category_uid": CATEGORY_UID,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": format!("API Activity: {activity_name}"),
        "time": time,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "message": message(event, &operation, &reasons),
        "actor": {"user": user(text(event, "actor").unwrap_or(""))},
        "api": {"operation": operation, "service": {"name": "Bridle"}},
        "metadata": {
            "version": OCSF_VERSION,
            "product": {
                "name": "Bridle",
                "vendor_name": "Bridle",
                "version": env!("CARGO_PKG_VERSION"),
            },
            "log_name": "audit",
            "uid": field(event, "hash"),
            "sequence": field(event, "seq"),
            "original_time": field(event, "time"),
        },
        "unmapped": event,
    });
    let status_detail = if reasons.is_empty() {
        text(event, "decision").map(str::to_owned)
    } else {
        Some(reasons.join(","))
    };
    let mut resources = Vec::new();
    if let Some(agent) = text(event, "agent") {
        resources.push(json!({"type": "agent", "uid": agent, "name": agent}));
    }
    if let Some(r) = text(event, "resource") {
        resources.push(json!({"type": "data", "name": r}));
    }
    if let Some(fields) = record.as_object_mut() {
        if let Some(d) = status_detail {
            fields.insert("status_detail".into(), d.into());
        }
        if !resources.is_empty() {
            fields.insert("resources".into(), resources.into());
        }
    }
    record
}

/// The value at `key` of an event; `null` when it has none.
fn field(event: &Value, key: &str) -> Value {
    event.get(key).cloned().unwrap_or(Value::Null)
}

/// The string at `key` of an event, if there is one.
fn text<'a>(event: &'a Value, key: &str) -> Option<&'a str> {
    event.get(key).and_then(Value::as_str)
}

fn activity(kind: &str, op: Option<&str>) -> u64 {
    match (kind, op) {
        (_, Some("create" | "issue" | "request")) => CREATE,
        (_, Some("revoke" | "delete")) => DELETE,
        ("decision" | "outcome", _) => OTHER,
        (_, Some(_))
        | ("lifecycle" | "manifest" | "approval" | "principal" | "elevation", None) => UPDATE,
        _ => OTHER,
    }
}

/// Success for an allowed decision or a completed change, Failure for a
/// denial or an outcome reported as an error.
fn status(event: &Value) -> (u64, &'static str) {
    match text(event, "decision") {
        Some("allow") => (1, "Success"),
        Some("deny") => (2, "Failure"),
        Some(_) => (99, "Other"),
        None if event.pointer("/detail/status").and_then(Value::as_str) == Some("error") => {
            (2, "Failure")
        }
        None => (1, "Success"),
    }
}

fn severity(event: &Value) -> (u64, &'static str) {
    match text(event, "decision") {
        Some("deny") => (3, "Medium"),
        Some("approval_required") => (2, "Low"),
        _ if event.pointer("/detail/status").and_then(Value::as_str) == Some("error") => (2, "Low"),
        _ => (1, "Informational"),
    }
}

/// `agent:swe-bot` → an agent, `principal:alice` → a user, `system` → the system.
fn user(actor: &str) -> Value {
    let (type_id, kind, uid) = match actor.split_once(':') {
        Some(("agent", id)) => (99, "Agent", id),
        Some(("principal", id)) => (1, "User", id),
        _ if actor == "system" => (3, "System", actor),
        _ => (0, "Unknown", actor),
    };
    json!({"name": actor, "uid": uid, "type_id": type_id, "type": kind})
}

fn message(event: &Value, operation: &str, reasons: &[&str]) -> String {
    let mut m = format!("{} {operation}", event["actor"].as_str().unwrap_or("?"));
    if let Some(d) = event["decision"].as_str() {
        m.push_str(&format!(": {d}"));
        if !reasons.is_empty() {
            m.push_str(&format!(" ({})", reasons.join(", ")));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denied_decision_is_a_failed_api_activity_keeping_the_chain_fields() {
        let event = json!({
            "seq": 42, "time": "2026-03-01T12:00:00.250Z", "type": "decision",
            "actor": "agent:procurement-bot", "agent": "procurement-bot",
            "action": "procurement.create_purchase_request", "decision": "deny",
            "reasons": [{"code": "arg_constraint", "message": "amount above 5000"}],
            "args": {"vendor": "acme", "amount": 9000}, "resource": "erp:po",
            "prev_hash": "aa", "hash": "bb"
        });
        let r = to_ocsf(&event);
        assert_eq!(r["class_uid"], 6003);
        assert_eq!(r["category_uid"], 6);
        assert_eq!(r["activity_id"], 99);
        assert_eq!(r["type_uid"], 600399);
        assert_eq!(r["time"], 1_772_366_400_250_i64);
        assert_eq!(r["status"], "Failure");
        assert_eq!(r["status_id"], 2);
        assert_eq!(r["status_detail"], "arg_constraint");
        assert_eq!(r["severity_id"], 3);
        assert_eq!(r["actor"]["user"]["name"], "agent:procurement-bot");
        assert_eq!(r["actor"]["user"]["uid"], "procurement-bot");
        assert_eq!(r["api"]["operation"], "procurement.create_purchase_request");
        assert_eq!(r["metadata"]["product"]["name"], "Bridle");
        assert_eq!(r["metadata"]["version"], "1.1.0");
        assert_eq!(r["metadata"]["sequence"], 42);
        assert_eq!(r["resources"][1], json!({"type": "data", "name": "erp:po"}));
        assert_eq!(r["unmapped"], event);
        assert_eq!(
            r["message"],
            "agent:procurement-bot procurement.create_purchase_request: deny (arg_constraint)"
        );
    }

    #[test]
    fn an_allowed_decision_succeeds_and_a_manifest_create_is_a_create() {
        let allow = json!({"seq": 1, "time": "2026-03-01T12:00:00Z", "type": "decision",
            "actor": "agent:a", "action": "x.y", "decision": "allow", "prev_hash": "", "hash": "h"});
        let r = to_ocsf(&allow);
        assert_eq!(
            (r["status"].clone(), r["severity_id"].clone()),
            (json!("Success"), json!(1))
        );

        let created = json!({"seq": 2, "time": "2026-03-01T12:00:00Z", "type": "manifest",
            "actor": "principal:alice", "agent": "a", "detail": {"op": "create", "version": 1},
            "prev_hash": "h", "hash": "i"});
        let r = to_ocsf(&created);
        assert_eq!(r["activity_id"], 1);
        assert_eq!(r["type_uid"], 600301);
        assert_eq!(r["type_name"], "API Activity: Create");
        assert_eq!(r["api"]["operation"], "manifest.create");
        assert_eq!(r["status"], "Success");
        assert_eq!(r["actor"]["user"]["type"], "User");
    }

    #[test]
    fn lifecycle_changes_are_updates_and_failed_outcomes_fail() {
        let suspended = json!({"type": "lifecycle", "actor": "system", "agent": "a",
            "detail": {"state": "suspended", "reason": "denial spike"}});
        let r = to_ocsf(&suspended);
        assert_eq!(
            (r["activity_id"].clone(), r["type_uid"].clone()),
            (json!(3), json!(600303))
        );
        assert_eq!(r["actor"]["user"]["type_id"], 3);

        let outcome = json!({"type": "outcome", "actor": "agent:a", "agent": "a",
            "detail": {"decision_id": "d1", "status": "error"}});
        let r = to_ocsf(&outcome);
        assert_eq!(r["status"], "Failure");
        assert_eq!(r["activity_id"], 99);
    }
}
