//! Approvals: `approval_required`, `approved` and `approval_denied`, and the
//! approval key that binds an approval to the exact request.

use std::collections::HashSet;

use bridle_core::engine::ApprovalStatus;
use bridle_core::ledger::MemoryLedger;
use bridle_core::manifest::Approver;
use bridle_core::{Effect, ReasonCode};
use serde_json::json;

use crate::approval_id;
use crate::common::{Approvals, Req, agent, agent_named, codes};

// ------------------------------ approval_required, approved, approval_denied

const APPROVALS: &str = "\
tools:
  - name: pay
    access: write
    args:
      vendor: { in: [acme, globex] }
      amount: { min: 1 }
    approval:
      when: context.args.amount > 5000
      approvers: [group:finance, bob, carol]
      min_approvals: 2
      ttl: 2h
      allow_owner: true
  - name: rotate
    approval:
      approvers: [dave]
";

#[test]
fn approval_required_says_who_must_approve_and_for_how_long() {
    let a = agent(APPROVALS);
    let d = Req::new(&a, "pay")
        .args(json!({"vendor": "acme", "amount": 7000}))
        .decide();
    assert_eq!(d.effect, Effect::ApprovalRequired);
    assert_eq!(codes(&d), [ReasonCode::ApprovalRequired]);
    let need = d.approval.as_ref().unwrap();
    assert_eq!(
        need.approvers,
        [
            "group:finance".parse::<Approver>().unwrap(),
            "bob".parse().unwrap(),
            "carol".parse().unwrap()
        ]
    );
    assert_eq!(need.min_approvals, 2);
    assert_eq!(need.ttl_seconds, 7200);
    assert!(need.allow_owner);
    assert_eq!(need.pending, None);
    assert_eq!(need.key.len(), 64);
    assert!(need.key.bytes().all(|b| b.is_ascii_hexdigit()));
    let src = d.reasons[0].source.as_ref().unwrap();
    assert_eq!(
        (src.path.as_str(), src.line),
        ("tools[0].approval", Some(13))
    );
    assert!(
        d.reasons[0]
            .message
            .contains("2 approvals from group:finance, bob, carol")
            && d.reasons[0].message.contains("context.args.amount > 5000"),
        "{}",
        d.reasons[0].message
    );

    // Below the threshold no approval is needed.
    let d = Req::new(&a, "pay")
        .args(json!({"vendor": "acme", "amount": 5000}))
        .decide();
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(codes(&d), [ReasonCode::Granted]);
}

#[test]
fn an_approval_rule_without_when_always_applies_with_defaults() {
    let a = agent(APPROVALS);
    let d = Req::new(&a, "rotate").decide();
    assert_eq!(d.effect, Effect::ApprovalRequired);
    let need = d.approval.unwrap();
    assert_eq!(need.min_approvals, 1);
    assert_eq!(need.ttl_seconds, 24 * 3600);
    assert!(!need.allow_owner);
    assert_eq!(need.approvers, ["dave".parse::<Approver>().unwrap()]);
}

#[test]
fn approval_keys_bind_the_exact_request() {
    let body = format!("{APPROVALS}data:\n  - {{ resource: \"r:*\", access: [write] }}\n");
    let a = agent(&body);
    let b = agent_named("other-bot", &body);
    let req = |args: serde_json::Value| Req::new(&a, "pay").args(args);
    let key = |r: Req<'_>| r.decide().approval.unwrap().key;

    let k1 = key(req(
        json!({"vendor": "acme", "amount": 7000, "meta": {"x": 1, "y": 2}}),
    ));
    // Same arguments in a different key order (top level and nested).
    let k2 = key(req(serde_json::from_str(
        r#"{"meta": {"y": 2, "x": 1}, "amount": 7000, "vendor": "acme"}"#,
    )
    .unwrap()));
    assert_eq!(k1, k2, "argument order must not change the approval key");
    // The key the engine reports is the key it looks approvals up by.
    assert_eq!(
        k1,
        req(json!({"vendor": "acme", "amount": 7000, "meta": {"x": 1, "y": 2}})).key()
    );

    let different = [
        key(req(
            json!({"vendor": "acme", "amount": 7001, "meta": {"x": 1, "y": 2}}),
        )),
        key(req(
            json!({"vendor": "globex", "amount": 7000, "meta": {"x": 1, "y": 2}}),
        )),
        key(req(
            json!({"vendor": "acme", "amount": 7000, "meta": {"x": 1, "y": 3}}),
        )),
        key(req(json!({"vendor": "acme", "amount": 7000}))),
        key(
            req(json!({"vendor": "acme", "amount": 7000, "meta": {"x": 1, "y": 2}}))
                .resource("r:1"),
        ),
        key(
            req(json!({"vendor": "acme", "amount": 7000, "meta": {"x": 1, "y": 2}}))
                .resource("r:2"),
        ),
        // Same request text, but another agent.
        key(Req::new(&b, "pay")
            .args(json!({"vendor": "acme", "amount": 7000, "meta": {"x": 1, "y": 2}}))),
    ];
    let mut all: HashSet<&String> = different.iter().collect();
    assert_eq!(all.len(), different.len(), "{different:?}");
    assert!(all.insert(&k1), "a different request reused the key");
}

#[test]
fn a_granted_approval_is_consumed_by_the_identical_request() {
    let a = agent(APPROVALS);
    let req = Req::new(&a, "pay").args(json!({"vendor": "acme", "amount": 7000}));
    let approvals = Approvals::new().with(req.key(), ApprovalStatus::Granted(approval_id("ap-7")));
    let d = req.decide_with(&MemoryLedger::new(), &approvals);
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(codes(&d), [ReasonCode::Approved]);
    assert_eq!(d.consumes, Some(approval_id("ap-7")));
    assert!(d.approval.is_none());
    assert!(d.reasons[0].message.contains("ap-7"));
    assert_eq!(approvals.asked.borrow().as_slice(), [req.key()]);

    // The approval covers exactly that request: another amount needs its own.
    let other = Req::new(&a, "pay").args(json!({"vendor": "acme", "amount": 7001}));
    let d = other.decide_with(&MemoryLedger::new(), &approvals);
    assert_eq!(d.effect, Effect::ApprovalRequired);
    assert_eq!(d.consumes, None);
}

#[test]
fn a_pending_approval_is_reused() {
    let a = agent(APPROVALS);
    let req = Req::new(&a, "pay").args(json!({"vendor": "acme", "amount": 7000}));
    let approvals = Approvals::new().with(req.key(), ApprovalStatus::Pending(approval_id("ap-9")));
    let d = req.decide_with(&MemoryLedger::new(), &approvals);
    assert_eq!(d.effect, Effect::ApprovalRequired);
    assert_eq!(d.approval.unwrap().pending, Some(approval_id("ap-9")));
}

#[test]
fn a_denied_approval_denies_the_identical_request() {
    let a = agent(APPROVALS);
    let req = Req::new(&a, "pay").args(json!({"vendor": "acme", "amount": 7000}));
    let approvals = Approvals::new().with(req.key(), ApprovalStatus::Denied(approval_id("ap-3")));
    let d = req.decide_with(&MemoryLedger::new(), &approvals);
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::ApprovalDenied]);
    assert!(d.reasons[0].message.contains("ap-3"));
    assert_eq!(d.consumes, None);
    assert_eq!(
        d.reasons[0].source.as_ref().unwrap().path,
        "tools[0].approval"
    );
}

#[test]
fn no_approval_is_asked_for_a_request_that_fails_earlier() {
    let a = agent(APPROVALS);
    let approvals = Approvals::new();
    let d = Req::new(&a, "pay")
        .args(json!({"vendor": "evil", "amount": 7000}))
        .decide_with(&MemoryLedger::new(), &approvals);
    assert_eq!(codes(&d), [ReasonCode::ArgConstraint]);
    assert!(d.approval.is_none());
    assert!(approvals.asked.borrow().is_empty());
}

#[test]
fn a_glob_without_approval_does_not_bypass_a_literal_with_approval() {
    // Two grants of one name are refused at load (equally specific); a
    // glob next to the literal governs only the other names.
    let a = agent(
        "tools:\n  - name: pay\n    approval:\n      approvers: [bob]\n  - name: \"p*\"\n    args:\n      amount: { max: 100 }\n",
    );
    let d = Req::new(&a, "pay").args(json!({"amount": 50})).decide();
    assert_eq!(d.effect, Effect::ApprovalRequired, "{d:?}");
    assert_eq!(
        d.reasons[0].source.as_ref().unwrap().path,
        "tools[0].approval"
    );
    let d = Req::new(&a, "push").args(json!({"amount": 50})).decide();
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(d.reasons[0].source.as_ref().unwrap().path, "tools[1]");
}
