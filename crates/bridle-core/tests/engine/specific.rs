//! The most specific grant governs: a glob next to a constrained literal
//! never lifts the literal's constraints, longer literal prefixes beat
//! shorter ones, equally specific overlaps are refused at load, and the
//! same holds for elevation tools among themselves.

use bridle_core::{Effect, Manifest, ReasonCode};
use serde_json::json;

use crate::common::{HEAD, Req, agent, codes};

const INVOICES: &str = "tools:
  - name: \"invoices.*\"
    access: write
  - name: invoices.pay_invoice
    access: write
    args:
      vendor: { in: [acme, globex] }
      amount: { max: 100000 }
    approval:
      when: context.args.amount > 5000
      approvers: [group:finance-approvers]
";

/// The attack of the issue: `invoices.*` used to be enough on its own, so
/// the vendor list, the cap and the approval of `invoices.pay_invoice`
/// were silently lifted.
#[test]
fn a_glob_never_lifts_the_constraints_of_a_literal_grant() {
    let a = agent(INVOICES);
    let pay = |args| Req::new(&a, "invoices.pay_invoice").args(args).decide();

    let d = pay(json!({"vendor": "evil-corp", "amount": 100}));
    assert_eq!(d.effect, Effect::Deny, "{d:?}");
    assert_eq!(codes(&d), [ReasonCode::ArgConstraint]);

    let d = pay(json!({"vendor": "acme", "amount": 900_000}));
    assert_eq!(d.effect, Effect::Deny, "{d:?}");
    assert_eq!(codes(&d), [ReasonCode::ArgConstraint]);

    let d = pay(json!({"vendor": "acme", "amount": 9_000}));
    assert_eq!(d.effect, Effect::ApprovalRequired, "{d:?}");

    let d = pay(json!({"vendor": "acme", "amount": 100}));
    assert_eq!(d.effect, Effect::Allow, "{d:?}");
    assert_eq!(d.reasons[0].source.as_ref().unwrap().path, "tools[1]");

    // Other invoice tools are still governed by the glob.
    let d = Req::new(&a, "invoices.list").decide();
    assert_eq!(d.effect, Effect::Allow, "{d:?}");
    assert_eq!(d.reasons[0].source.as_ref().unwrap().path, "tools[0]");
}

#[test]
fn the_decision_says_which_grant_governed_and_why() {
    let a = agent(INVOICES);
    let d = Req::new(&a, "invoices.pay_invoice")
        .args(json!({"vendor": "evil-corp", "amount": 100}))
        .decide();
    assert!(
        d.reasons[0]
            .message
            .ends_with("governed by `invoices.pay_invoice` (a literal name beats `invoices.*`)"),
        "{}",
        d.reasons[0].message
    );
    let d = Req::new(&a, "invoices.pay_invoice")
        .args(json!({"vendor": "acme", "amount": 1}))
        .decide();
    assert!(
        d.reasons[0]
            .message
            .contains("governed by `invoices.pay_invoice`"),
        "{}",
        d.reasons[0].message
    );
    // One matching grant: nothing to explain.
    let d = Req::new(&a, "invoices.list").decide();
    assert!(
        !d.reasons[0].message.contains("governed"),
        "{}",
        d.reasons[0].message
    );
}

#[test]
fn between_globs_the_longer_literal_prefix_governs() {
    let a = agent(
        "tools:
  - name: \"*\"
  - name: \"payments.*\"
    args:
      amount: { max: 10 }
  - name: \"payments.wire_*\"
    approval:
      approvers: [bob]
",
    );
    let d = Req::new(&a, "payments.refund")
        .args(json!({"amount": 50}))
        .decide();
    assert_eq!(codes(&d), [ReasonCode::ArgConstraint], "{d:?}");
    let d = Req::new(&a, "payments.wire_transfer")
        .args(json!({"amount": 50}))
        .decide();
    assert_eq!(d.effect, Effect::ApprovalRequired, "{d:?}");
    let d = Req::new(&a, "docs.read")
        .args(json!({"amount": 50}))
        .decide();
    assert_eq!(d.effect, Effect::Allow, "{d:?}");
    assert!(d.reasons[0].message.is_empty() || !d.reasons[0].message.contains("governed"));
}

#[test]
fn a_forbid_still_wins_over_the_governing_grant() {
    let a = agent(&format!("{INVOICES}forbid: [invoices.pay_invoice]\n"));
    let d = Req::new(&a, "invoices.pay_invoice")
        .args(json!({"vendor": "acme", "amount": 1}))
        .decide();
    assert_eq!(codes(&d), [ReasonCode::Forbidden]);
}

#[test]
fn equally_specific_grants_matching_one_name_are_refused_at_load() {
    let cases = [
        (
            "  - name: \"*.read\"\n  - name: \"*\"\n",
            "tools[1].name",
            8,
            "`.read`",
        ),
        (
            "  - name: \"a.*\"\n  - name: \"a.*\"\n",
            "tools[1].name",
            8,
            "`a.`",
        ),
        (
            "  - name: docs.read\n  - name: docs.read\n",
            "tools[1].name",
            8,
            "`docs.read`",
        ),
        (
            "  - name: \"a.*x\"\n  - name: \"a.*b*\"\n",
            "tools[1].name",
            8,
            "`a.bx`",
        ),
    ];
    for (tools, path, line, name) in cases {
        let src = format!("{HEAD}tools:\n{tools}");
        let errs = Manifest::from_source(&src).unwrap_err();
        let e = errs
            .errors
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("no error at {path}: {errs}"));
        assert_eq!(e.line, line, "{tools}");
        assert!(e.message.contains("equally specific"), "{}", e.message);
        assert!(e.message.contains(name), "{}", e.message);
    }
    // Equal specificity without a common name is fine.
    let src = format!(
        "{HEAD}tools:\n  - name: \"*.read\"\n  - name: \"*.write\"\n  - name: \"a.*\"\n  - name: \"b.*\"\n"
    );
    Manifest::from_source(&src).unwrap();
}

#[test]
fn elevation_tools_are_governed_the_same_way() {
    let a = agent(
        "tools: []
elevation:
  - name: broad
    tools: [\"identity.*\"]
    max_duration: 1h
    approvers: [bob]
  - name: narrow
    tools: [identity.disable_user]
    max_duration: 1h
    approvers: [bob]
",
    );
    // `broad` does not reach the tool that `narrow` names.
    let d = Req::new(&a, "identity.disable_user")
        .elevation("broad")
        .decide();
    assert_eq!(d.effect, Effect::Deny, "{d:?}");
    let d = Req::new(&a, "identity.disable_user")
        .elevation("narrow")
        .decide();
    assert_eq!(d.effect, Effect::Allow, "{d:?}");
    let d = Req::new(&a, "identity.reset").elevation("broad").decide();
    assert_eq!(d.effect, Effect::Allow, "{d:?}");

    let src = format!(
        "{HEAD}elevation:\n  - name: one\n    tools: [\"id.*\"]\n    max_duration: 1h\n    approvers: [bob]\n  - name: two\n    tools: [\"id.*\"]\n    max_duration: 1h\n    approvers: [bob]\n"
    );
    let errs = Manifest::from_source(&src).unwrap_err();
    assert!(
        errs.errors
            .iter()
            .any(|e| e.path == "elevation[1].tools[0]"),
        "{errs}"
    );
}
