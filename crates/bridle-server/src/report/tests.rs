//! The report over a fixed fixture at a fixed instant, in all three
//! formats: snapshots (`cargo insta review` after a deliberate change), and
//! what the HTML page must never do (fetch anything, run anything).

use std::collections::BTreeMap;

use bridle_core::decision::Effect;
use bridle_core::engine::AgentState;
use bridle_store::{AgentRow, AuditRange, HourlyUses};
use jiff::Timestamp;

use super::*;
use crate::service::findings::{Finding, FindingCode};
use crate::service::report::{self as service, AgentEvidence, Approvals, Chain, Report, Versions};

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn row(id: &str, owner: &str, env: &str) -> AgentRow {
    AgentRow {
        id: id.parse().unwrap(),
        version: 2,
        state: AgentState::Active,
        state_reason: None,
        state_by: None,
        owner: owner.parse().unwrap(),
        environment: env.into(),
        expires: "2027-01-01".parse().unwrap(),
        manifest: serde_json::json!({}),
        source: String::new(),
        last_review_at: Some(at("2026-05-01T09:30:00Z")),
        created_at: at("2026-04-01T08:00:00Z"),
        updated_at: at("2026-05-02T10:00:00Z"),
    }
}

/// Two agents over the week to 2026-05-10 12:00 UTC: `swe-bot` with two
/// open findings, decisions on three days and three decided approvals;
/// `ir-bot` clean and idle.
pub(super) fn fixture() -> ComplianceReport {
    let now = at("2026-05-10T12:00:00Z");
    let since = at("2026-05-03T12:00:00Z");
    let hour = |t: &str| at(t).as_second() / 3600;
    let hourly = [
        (hour("2026-05-04T10:00:00Z"), Effect::Allow, 12),
        (hour("2026-05-04T11:00:00Z"), Effect::Deny, 3),
        (hour("2026-05-06T15:00:00Z"), Effect::Allow, 7),
        (hour("2026-05-06T15:00:00Z"), Effect::ApprovalRequired, 2),
        (hour("2026-05-09T08:00:00Z"), Effect::Deny, 1),
    ]
    .map(|(hour, effect, uses)| HourlyUses { hour, effect, uses });
    let swe = row("swe-bot", "alice", "prod");
    let findings = vec![
        Finding {
            agent: swe.id.clone(),
            code: FindingCode::WildcardGrant,
            subject: String::new(),
            evidence: serde_json::Value::Null,
            detail: "tools[0] grants `*`: the agent may call any tool".into(),
        },
        Finding {
            agent: swe.id.clone(),
            code: FindingCode::BearerTokensInProd,
            subject: String::new(),
            evidence: serde_json::Value::Null,
            detail: "set `credentials.dpop: required` to bind tokens to the agent's key".into(),
        },
    ];
    let swe = AgentEvidence {
        versions: Versions {
            count: 2,
            in_force: 2,
            applied_by: Some("alice".into()),
            applied_at: Some(at("2026-05-02T10:00:00Z")),
        },
        approvals: Approvals {
            requested: 5,
            approved: 2,
            denied: 1,
            expired: 1,
            pending: 1,
            cancelled: 0,
            latencies: vec![45, 200, 5400],
        },
        audit: AuditRange {
            count: 26,
            first: Some((101, at("2026-05-04T10:02:11.5Z"))),
            last: Some((190, at("2026-05-09T08:15:00Z"))),
        },
        outcomes: BTreeMap::from([("allow", 19), ("approval_required", 2), ("deny", 4)]),
        denials: BTreeMap::from([("arg_constraint".into(), 1), ("not_granted".into(), 3)]),
        days: service::days(since, now, &hourly),
        findings,
        row: swe,
    };
    let mut ir = row("ir-bot", "bob", "staging");
    ir.last_review_at = None;
    let ir = AgentEvidence {
        versions: Versions {
            count: 1,
            in_force: 1,
            applied_by: Some("bob".into()),
            applied_at: Some(at("2026-04-01T08:00:00Z")),
        },
        approvals: Approvals::default(),
        audit: AuditRange::default(),
        outcomes: BTreeMap::from([("allow", 0), ("approval_required", 0), ("deny", 0)]),
        denials: BTreeMap::new(),
        days: service::days(since, now, &[]),
        findings: vec![],
        row: ir,
    };
    Report {
        generated_at: now,
        window: "7d".into(),
        since,
        chain: Chain {
            verified: true,
            events: 190,
            first_bad_seq: None,
            checkpoint: Some((180, at("2026-05-09T08:00:00Z"))),
        },
        agents: vec![swe, ir],
    }
    .into()
}

#[test]
fn json_snapshot() {
    insta::assert_json_snapshot!("report_json", fixture());
}

#[test]
fn markdown_snapshot() {
    let md = markdown(&fixture()).unwrap();
    // What an auditor reads first: the failing control and why.
    assert!(
        md.contains("| OWASP-NHI5:2025 | Overprivileged NHI | **not satisfied** | `wildcard_grant` (high): tools[0] grants `*`"),
        "{md}"
    );
    assert!(md.contains("| OWASP-ASI05:2026 | Unexpected Code Execution | not assessed |"));
    insta::assert_snapshot!("report_md", md);
}

#[test]
fn html_snapshot_is_self_contained_and_accessible() {
    let html = html(&fixture()).unwrap();
    assert_eq!(html.matches("<h1").count(), 1, "one h1");
    assert!(html.contains("<html lang=\"en\">"));
    // Every header cell of every table says what it heads.
    assert_eq!(
        html.matches("<th ").count() + html.matches("<th>").count(),
        html.matches("<th scope=\"").count()
    );
    // Nothing fetched, nothing run.
    for bad in [
        "<script", "<link", "<img", "<iframe", "@import", "url(http", "url(//",
    ] {
        assert!(!html.contains(bad), "{bad}");
    }
    for attr in ["src=", "href=", "xlink:href="] {
        for quote in ["\"", "'"] {
            for scheme in ["http://", "https://", "//"] {
                let needle = format!("{attr}{quote}{scheme}");
                assert!(!html.contains(&needle), "{needle}");
            }
        }
    }
    // The four charts of the active agent are there as inline SVG; the
    // idle agent's say in words that there is nothing to draw.
    assert_eq!(html.matches("<svg").count(), 4, "{html}");
    assert!(html.contains("No decisions in the window."));
    assert!(html.contains("No decided approvals in the window."));
    insta::assert_snapshot!("report_html", html);
}
