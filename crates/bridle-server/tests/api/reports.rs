//! `GET /v1/reports/compliance`: the evidence for auditors, from what the
//! agent's record, its decisions and the audit log hold; in JSON, Markdown
//! and HTML; and only about the agents the caller may see.
//!
//! The Markdown is snapshotted (one snapshot for both backends, so they
//! must agree). What a run cannot fix is normalised before the comparison,
//! by the filters of [`assert_normalised_snapshot`]: instants and dates (the store stamps
//! them with the time of the run) and audit sequence numbers and record
//! counts (they count the run's own authentication records). Everything
//! else — statuses, findings, versions, decisions, denials, approvals — is
//! compared as it is.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, Server};
// The procurement agent's recorded week, as the usage tests record it.
use crate::usage::{AGENT, history};

fn control<'a>(agent: &'a Value, id: &str) -> &'a Value {
    agent["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no control {id}: {agent}"))
}

/// Snapshot `md` with what a run cannot fix replaced (see the module doc).
fn assert_normalised_snapshot(name: &str, md: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", "[instant]");
    settings.add_filter(r"\d{4}-\d{2}-\d{2}", "[date]");
    settings.add_filter(r"seq \d+", "seq [n]");
    settings.add_filter(r"(Records read|Audit records): \d+", "$1: [n]");
    settings.bind(|| insta::assert_snapshot!(name, md));
}

async fn report_states_each_control_with_its_evidence(s: Server) {
    let people = s.people().await;
    history(&s).await;
    let r = s
        .get(
            &format!("/v1/reports/compliance?agent={AGENT}&window=7d"),
            &people["ann"],
        )
        .await
        .expect(200);
    assert!(
        r.content_type.starts_with("application/json"),
        "{}",
        r.content_type
    );
    assert_eq!(r["window"], "7d");
    assert_eq!(r["audit_chain"]["verified"], true, "{}", r.text);
    let agents = r["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1);
    let a = &agents[0];
    assert_eq!(a["agent"], AGENT);
    assert_eq!(a["owner"], "alice");
    let e = &a["evidence"];
    assert_eq!(e["versions"]["count"], 1);
    assert_eq!(e["versions"]["in_force"], 1);
    assert_eq!(e["versions"]["applied_by"], "admin", "{e}");
    // Registering an agent counts as its first review.
    assert!(e["last_review_at"].is_string(), "{e}");
    assert_eq!(
        e["decisions"],
        json!({"allow": 5, "deny": 2, "approval_required": 1})
    );
    let denied: i64 = e["denials"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(denied, 2, "{}", e["denials"]);
    assert_eq!(e["approvals"]["requested"], 1);
    assert_eq!(e["approvals"]["pending"], 1);
    assert_eq!(e["approvals"]["latency_p50_seconds"], Value::Null);
    // The audit range covers the agent's eight decisions at least.
    let audit = &e["audit"];
    assert!(audit["events"].as_u64().unwrap() >= 8, "{audit}");
    assert!(audit["first_seq"].as_u64() <= audit["last_seq"].as_u64());
    // Seven days and today; today has the eight decisions.
    let days = e["activity"].as_array().unwrap();
    assert_eq!(days.len(), 8, "{days:?}");
    let today = days.last().unwrap();
    assert_eq!(
        (
            today["allow"].as_i64(),
            today["deny"].as_i64(),
            today["approval_required"].as_i64()
        ),
        (Some(5), Some(2), Some(1))
    );

    // A control fails exactly where an open finding maps to it, and the
    // findings it lists are the agent's findings.
    let findings = s
        .get(&format!("/v1/findings?agent={AGENT}"), &people["ann"])
        .await
        .expect(200);
    let mapped: BTreeSet<String> = findings["findings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["frameworks"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let failing: BTreeSet<String> = a["controls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "not_satisfied")
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(failing, mapped);
    assert!(
        !failing.is_empty(),
        "procurement-bot is in prod without DPoP"
    );
    for c in a["controls"].as_array().unwrap() {
        let (status, rules, open) = (&c["status"], &c["rules"], &c["findings"]);
        match status.as_str().unwrap() {
            "not_satisfied" => assert!(!open.as_array().unwrap().is_empty(), "{c}"),
            "satisfied" => assert!(!rules.as_array().unwrap().is_empty(), "{c}"),
            "not_assessed" => assert!(rules.as_array().unwrap().is_empty(), "{c}"),
            other => panic!("status {other}"),
        }
    }
    assert_eq!(control(a, "OWASP-ASI05:2026")["status"], "not_assessed");
    let counted = &a["summary"];
    assert_eq!(
        counted["not_satisfied"].as_u64(),
        Some(failing.len() as u64)
    );

    // Markdown, by `format=` or by `Accept`.
    let md = s
        .get(
            &format!("/v1/reports/compliance?agent={AGENT}&window=7d&format=md"),
            &people["ann"],
        )
        .await
        .expect(200);
    assert_eq!(md.content_type, "text/markdown; charset=utf-8");
    assert_normalised_snapshot("compliance_report_md", &md.text);
    let accepted = s
        .send(
            s.req(
                reqwest::Method::GET,
                &format!("/v1/reports/compliance?agent={AGENT}"),
                &people["ann"],
            )
            .header("accept", "text/html"),
        )
        .await
        .expect(200);
    assert_eq!(accepted.content_type, "text/html; charset=utf-8");
    let html = accepted.text;
    assert_eq!(html.matches("<h1").count(), 1);
    assert!(html.contains("<svg"), "the charts are inline SVG");
    for bad in [
        "<script",
        "<link",
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
    ] {
        assert!(!html.contains(bad), "{bad}");
    }
}
on_both!(report_states_each_control_with_its_evidence);

async fn report_shows_only_what_the_caller_may_see(s: Server) {
    let people = s.people().await;
    s.load(AGENT).await; // alice's
    s.load("swe-bot").await; // bob's
    s.load("test-runner").await; // bob's
    let agents_of = |r: &crate::common::Resp| -> Vec<String> {
        r["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["agent"].as_str().unwrap().to_owned())
            .collect()
    };
    let bob = s
        .get("/v1/reports/compliance", &people["bob"])
        .await
        .expect(200);
    let mut seen = agents_of(&bob);
    seen.sort();
    assert_eq!(seen, ["swe-bot", "test-runner"]);
    let all = s
        .get("/v1/reports/compliance", &people["ann"])
        .await
        .expect(200);
    assert_eq!(agents_of(&all).len(), 3);
    assert_eq!(
        agents_of(&s.get("/v1/reports/compliance", ADMIN_KEY).await.expect(200)).len(),
        3
    );
    // Someone else's agent does not exist for bob, in any format.
    let hidden = s
        .get(
            &format!("/v1/reports/compliance?agent={AGENT}"),
            &people["bob"],
        )
        .await
        .problem(404);
    let unknown = s
        .get("/v1/reports/compliance?agent=nobody-bot", &people["bob"])
        .await
        .problem(404);
    assert_eq!(
        hidden["detail"].as_str().map(|d| d.replace(AGENT, "X")),
        unknown["detail"]
            .as_str()
            .map(|d| d.replace("nobody-bot", "X"))
    );
    s.get(
        &format!("/v1/reports/compliance?agent={AGENT}&format=html"),
        &people["mallory"],
    )
    .await
    .problem(404);
    let nothing = s
        .get("/v1/reports/compliance?format=md", &people["mallory"])
        .await
        .expect(200);
    assert!(
        nothing.text.contains("No agents to report."),
        "{}",
        nothing.text
    );
    assert!(!nothing.text.contains(AGENT));
    // Agents read no reports.
    let token = s.agent_token(AGENT).await;
    s.get("/v1/reports/compliance", &token).await.problem(403);

    // Bad parameters are 400 with the parameter named.
    for (query, path) in [
        ("window=forever", "window"),
        ("window=9999d", "window"),
        ("format=pdf", "format"),
    ] {
        let p = s
            .get(&format!("/v1/reports/compliance?{query}"), &people["ann"])
            .await
            .problem(400);
        assert_eq!(p["errors"][0]["path"], path, "{}", p.text);
    }
}
on_both!(report_shows_only_what_the_caller_may_see);
