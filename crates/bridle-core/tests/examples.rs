//! Every manifest in `examples/` loads, compiles, and decides as documented.
//! A new example must come with rows in `TABLE`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

mod common;

use std::collections::BTreeMap;

use bridle_core::{CompiledAgent, Effect, Guardrails, Manifest, ReasonCode};
use common::{NOON, Req, examples_dir};
use serde_json::{Value, json};

struct Row {
    example: &'static str,
    action: &'static str,
    args: Value,
    resource: Option<&'static str>,
    at: &'static str,
    elevations: &'static [&'static str],
    effect: Effect,
    code: ReasonCode,
}

fn row(example: &'static str, action: &'static str, effect: Effect, code: ReasonCode) -> Row {
    Row {
        example,
        action,
        args: json!({}),
        resource: None,
        at: NOON,
        elevations: &[],
        effect,
        code,
    }
}

impl Row {
    fn args(mut self, args: Value) -> Self {
        self.args = args;
        self
    }
    fn resource(mut self, r: &'static str) -> Self {
        self.resource = Some(r);
        self
    }
    /// An RFC 3339 instant; the default is Monday 2026-06-01 12:00 UTC.
    fn at(mut self, at: &'static str) -> Self {
        self.at = at;
        self
    }
    fn elevated(mut self, names: &'static [&'static str]) -> Self {
        self.elevations = names;
        self
    }
}

use Effect::{Allow, ApprovalRequired, Deny};
use ReasonCode::*;

fn table() -> Vec<Row> {
    vec![
        // ir-bot: quarantine on its own; identity writes only while elevated.
        row("ir-bot", "edr.quarantine_endpoint", Allow, Granted),
        row("ir-bot", "identity.disable_user", Deny, NotGranted),
        row("ir-bot", "identity.disable_user", Allow, Elevated).elevated(&["identity-write"]),
        row("ir-bot", "identity.reset_credentials", Allow, Elevated).elevated(&["identity-write"]),
        row("ir-bot", "secrets.read", Deny, Forbidden).elevated(&["identity-write"]),
        row("ir-bot", "edr.quarantine_endpoint", Deny, AgentExpired).at("2028-01-01T00:00:00Z"),
        // procurement-bot: vendor list, approval above 5000, 50000 a day.
        row(
            "procurement-bot",
            "procurement.list_vendors",
            Allow,
            Granted,
        ),
        row(
            "procurement-bot",
            "procurement.create_purchase_request",
            Allow,
            Granted,
        )
        .args(json!({"vendor": "acme", "amount": 700})),
        row(
            "procurement-bot",
            "procurement.create_purchase_request",
            Allow,
            Granted,
        )
        .args(json!({"vendor": "initech", "amount": 5000})),
        row(
            "procurement-bot",
            "procurement.create_purchase_request",
            ApprovalRequired,
            ReasonCode::ApprovalRequired,
        )
        .args(json!({"vendor": "globex", "amount": 7000})),
        row(
            "procurement-bot",
            "procurement.create_purchase_request",
            Deny,
            ArgConstraint,
        )
        .args(json!({"vendor": "evil-corp", "amount": 700})),
        row(
            "procurement-bot",
            "procurement.create_purchase_request",
            Deny,
            ArgConstraint,
        )
        .args(json!({"vendor": "acme", "amount": 0})),
        row(
            "procurement-bot",
            "procurement.create_purchase_request",
            Deny,
            ArgConstraint,
        )
        .args(json!({"vendor": "acme"})),
        row(
            "procurement-bot",
            "procurement.create_purchase_request",
            Deny,
            BudgetExceeded,
        )
        .args(json!({"vendor": "acme", "amount": 60000})),
        row(
            "procurement-bot",
            "procurement.approve_purchase_request",
            Deny,
            Forbidden,
        ),
        row(
            "procurement-bot",
            "procurement.delete_vendor",
            Deny,
            NotGranted,
        ),
        // research-bot: search anything, fetch only over https.
        row("research-bot", "web.search", Allow, Granted).args(json!({"q": "cedar policy"})),
        row("research-bot", "web.fetch", Allow, Granted)
            .args(json!({"url": "https://example.org/a"})),
        row("research-bot", "web.fetch", Deny, ArgConstraint)
            .args(json!({"url": "http://example.org/a"})),
        row("research-bot", "web.fetch", Deny, ArgConstraint)
            .args(json!({"url": "file:///etc/passwd#https://"})),
        row("research-bot", "web.post", Deny, NotGranted),
        // support-bot: case data only, Dublin office hours (UTC+1 in June).
        row("support-bot", "crm.get_case", Allow, Granted).resource("crm:cases/42"),
        row("support-bot", "crm.reply_to_case", Allow, Granted)
            .args(json!({"body": "Hello"}))
            .resource("crm:cases/42"),
        row("support-bot", "crm.get_case", Deny, DataScope).resource("crm:users/42"),
        row("support-bot", "crm.export_cases", Deny, Forbidden),
        row("support-bot", "admin.reset_password", Deny, Forbidden),
        row("support-bot", "crm.get_case", Allow, Granted).at("2026-06-01T06:00:00Z"),
        row("support-bot", "crm.get_case", Deny, OutsideSchedule).at("2026-06-01T05:59:00Z"),
        row("support-bot", "crm.get_case", Deny, OutsideSchedule).at("2026-06-01T19:00:00Z"),
        row("support-bot", "crm.get_case", Allow, Granted).at("2026-06-06T08:00:00Z"),
        row("support-bot", "crm.get_case", Deny, OutsideSchedule).at("2026-06-06T12:00:00Z"),
        row("support-bot", "crm.get_case", Deny, OutsideSchedule).at("2026-06-07T12:00:00Z"),
        row("support-bot", "crm.delete_case", Deny, NotGranted),
        // swe-bot: PRs in acme/, tests, reads; never merge or secrets.
        row("swe-bot", "github.create_pull_request", Allow, Granted)
            .args(json!({"repo": "acme/app"})),
        row("swe-bot", "github.create_pull_request", Deny, ArgConstraint)
            .args(json!({"repo": "other/app"})),
        row("swe-bot", "github.get_issue", Allow, Granted),
        row("swe-bot", "github.merge_pull_request", Deny, Forbidden),
        row("swe-bot", "secrets.read", Deny, Forbidden),
        row("swe-bot", "ci.run_tests", Allow, Granted),
        row("swe-bot", "ci.deploy", Deny, NotGranted),
        // test-runner on its own: all of CI, reading secrets.
        row("test-runner", "ci.deploy", Allow, Granted),
        row("test-runner", "secrets.read", Allow, Granted),
        row("test-runner", "secrets.write", Deny, NotGranted),
        row(
            "test-runner",
            "github.create_pull_request",
            Deny,
            NotGranted,
        ),
    ]
}

fn load_examples() -> BTreeMap<String, (String, CompiledAgent)> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "yaml" | "yml" | "json") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let manifest = Manifest::from_source(&source)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            manifest.agent.as_str(),
            stem,
            "{}: the file name should be the agent id",
            path.display()
        );
        let agent = CompiledAgent::compile(manifest, &Guardrails::new())
            .unwrap_or_else(|e| panic!("{} does not compile: {e}", path.display()));
        out.insert(stem, (source, agent));
    }
    out
}

#[test]
fn every_example_parses_compiles_and_has_a_decision_table() {
    let examples = load_examples();
    assert!(
        examples.len() >= 6,
        "examples went missing: {:?}",
        examples.keys()
    );
    let table = table();
    for name in examples.keys() {
        let rows: Vec<&Row> = table.iter().filter(|r| r.example == name).collect();
        assert!(
            rows.len() >= 3,
            "examples/{name}: add at least 3 rows to the table in tests/examples.rs"
        );
        assert!(
            rows.iter().any(|r| r.effect == Allow) && rows.iter().any(|r| r.effect == Deny),
            "examples/{name}: the table needs an allowed and a denied row"
        );
        let m = examples[name].1.manifest();
        if m.tools.iter().any(|t| t.approval.is_some()) {
            assert!(
                rows.iter().any(|r| r.effect == ApprovalRequired),
                "examples/{name}: has approval rules but no approval_required row"
            );
        }
        if !m.elevation.is_empty() {
            assert!(
                rows.iter().any(|r| r.code == Elevated),
                "examples/{name}: has elevations but no elevated row"
            );
        }
    }
    for r in &table {
        assert!(
            examples.contains_key(r.example),
            "table row for missing example `{}`",
            r.example
        );
    }
}

#[test]
fn every_example_decides_as_its_table_says() {
    let examples = load_examples();
    let mut failures = Vec::new();
    for r in table() {
        let (_, agent) = &examples[r.example];
        let mut req = Req::new(agent, r.action).args(r.args.clone()).at(r.at);
        if let Some(res) = r.resource {
            req = req.resource(res);
        }
        for e in r.elevations {
            req = req.elevation(e);
        }
        let d = req.decide();
        if d.effect != r.effect || d.primary_code() != Some(r.code) {
            failures.push(format!(
                "{} {} {} at {}: expected {} {}, got {} {:?}",
                r.example, r.action, r.args, r.at, r.effect, r.code, d.effect, d.reasons
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn delegation_targets_are_examples_too() {
    let examples = load_examples();
    for (name, (_, agent)) in &examples {
        for to in &agent.manifest().delegation.to {
            assert!(
                examples.contains_key(to.as_str()),
                "examples/{name} delegates to `{to}`, which has no example"
            );
        }
    }
}

#[test]
fn example_decisions_point_at_real_lines() {
    // The line a reason names is the line of the grant that decided it.
    let examples = load_examples();
    let (source, agent) = &examples["procurement-bot"];
    let d = Req::new(agent, "procurement.create_purchase_request")
        .args(json!({"vendor": "acme", "amount": 700}))
        .decide();
    let line = d.reasons[0].source.as_ref().unwrap().line.unwrap();
    assert_eq!(
        source.lines().nth(line - 1).unwrap().trim(),
        "- name: procurement.create_purchase_request"
    );
    let d = Req::new(agent, "procurement.approve_po").decide();
    let line = d.reasons[0].source.as_ref().unwrap().line.unwrap();
    assert!(
        source.lines().nth(line - 1).unwrap().starts_with("forbid:"),
        "{line}"
    );
}
