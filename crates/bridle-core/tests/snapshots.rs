//! Snapshots of what users read: decision explanations on the example agents,
//! and the error report for every file in `tests/bad-manifests/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

mod common;

use std::path::PathBuf;

use bridle_core::{AgentState, Effect, Manifest};
use common::{Req, example, parse};
use serde_json::json;

#[test]
fn decision_explanations() {
    let procurement = example("procurement-bot");
    let support = example("support-bot");
    let swe = example("swe-bot");
    let runner = example("test-runner");
    let ir = example("ir-bot");
    let research = example("research-bot");
    let buy = |args| Req::new(&procurement, "procurement.create_purchase_request").args(args);

    let cases: Vec<(&str, Req<'_>)> = vec![
        (
            "procurement_small_purchase_allowed",
            buy(json!({"vendor": "acme", "amount": 700})),
        ),
        (
            "procurement_large_purchase_needs_approval",
            buy(json!({"vendor": "acme", "amount": 7000})),
        ),
        (
            "procurement_unknown_vendor_and_amount_too_high",
            buy(json!({"vendor": "evil-corp", "amount": 200000})),
        ),
        (
            "procurement_amount_as_string",
            buy(json!({"vendor": "acme", "amount": "700"})),
        ),
        (
            "procurement_approve_forbidden",
            Req::new(&procurement, "procurement.approve_po"),
        ),
        (
            "procurement_over_daily_budget",
            buy(json!({"vendor": "globex", "amount": 60000})),
        ),
        (
            "procurement_suspended",
            Req::new(&procurement, "procurement.list_vendors").state(AgentState::Suspended),
        ),
        (
            "procurement_expired",
            Req::new(&procurement, "procurement.list_vendors").at("2028-01-01T00:00:00Z"),
        ),
        (
            "support_case_in_scope",
            Req::new(&support, "crm.reply_to_case")
                .args(json!({"body": "We are on it."}))
                .resource("crm:cases/42"),
        ),
        (
            "support_data_out_of_scope",
            Req::new(&support, "crm.get_case").resource("crm:users/7"),
        ),
        (
            "support_sunday",
            Req::new(&support, "crm.get_case").at("2026-06-07T12:00:00Z"),
        ),
        (
            "support_export_forbidden",
            Req::new(&support, "crm.export_cases"),
        ),
        (
            "swe_pull_request_outside_org",
            Req::new(&swe, "github.create_pull_request").args(json!({"repo": "evil/app"})),
        ),
        (
            "swe_delegates_tests",
            Req::new(&swe, "ci.run_tests").delegate(&runner),
        ),
        (
            "swe_delegate_reads_secrets",
            Req::new(&swe, "secrets.read").delegate(&runner),
        ),
        (
            "swe_delegate_deploys",
            Req::new(&swe, "ci.deploy").delegate(&runner),
        ),
        (
            "swe_delegate_out_of_scope",
            Req::new(&swe, "ci.run_tests")
                .delegate(&runner)
                .scope(&["github.get_*"]),
        ),
        (
            "ir_identity_without_elevation",
            Req::new(&ir, "identity.disable_user"),
        ),
        (
            "ir_identity_elevated",
            Req::new(&ir, "identity.disable_user").elevation("identity-write"),
        ),
        (
            "ir_secrets_elevated_still_forbidden",
            Req::new(&ir, "secrets.read").elevation("identity-write"),
        ),
        (
            "research_fetch_https",
            Req::new(&research, "web.fetch").args(json!({"url": "https://example.org/paper"})),
        ),
        (
            "research_fetch_plain_http",
            Req::new(&research, "web.fetch").args(json!({"url": "http://example.org/paper"})),
        ),
        (
            "research_fetch_without_url",
            Req::new(&research, "web.fetch"),
        ),
    ];
    for (name, req) in cases {
        let decision = req.decide();
        insta::assert_yaml_snapshot!(format!("decision__{name}"), decision);
    }
}

/// The approval a decision asks for is the one it would consume, so the
/// snapshot's key is checked against the engine, not only recorded.
#[test]
fn the_snapshotted_approval_key_is_the_lookup_key() {
    let procurement = example("procurement-bot");
    let req = Req::new(&procurement, "procurement.create_purchase_request")
        .args(json!({"vendor": "acme", "amount": 7000}));
    let d = req.decide();
    assert_eq!(d.effect, Effect::ApprovalRequired);
    assert_eq!(d.approval.unwrap().key, req.key());
}

fn bad_manifests() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad-manifests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn bad_manifest_errors() {
    let files = bad_manifests();
    assert!(files.len() >= 17, "the corpus went missing: {files:?}");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&path).unwrap();
        let errors = match Manifest::from_source(&source) {
            Ok(m) => panic!("{name} was accepted as agent `{}`", m.agent),
            Err(e) => e,
        };
        // Every error points into the file.
        let lines = source.lines().count().max(1);
        for e in &errors.errors {
            assert!(
                (1..=lines + 1).contains(&e.line) && e.column >= 1,
                "{name}: {e}"
            );
        }
        let stem = name.replace(['.', '-'], "_");
        insta::assert_snapshot!(format!("bad_manifest__{stem}"), errors.to_string());
    }
}

#[test]
fn an_end_before_start_is_an_overnight_window_not_an_error() {
    let m = parse(&format!(
        "{}schedule:\n  timezone: Europe/Berlin\n  windows: [\"Fri 22:00-06:00\", \"daily 00:00-24:00\"]\n",
        common::HEAD
    ));
    let s = m.schedule.unwrap();
    assert_eq!(s.timezone_name, "Europe/Berlin");
    assert_eq!((s.windows[0].start, s.windows[0].end), (22 * 60, 6 * 60));
    assert_eq!(s.windows[1].end, 24 * 60);
}
