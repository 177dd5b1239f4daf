//! `when` and `approval.when` over arguments without a constraint: the type
//! is inferred from the expression, and a missing or wrong-typed argument
//! makes `when` fail (`arg_constraint`) and `approval.when` hold (approval
//! required). Never fail open.

use bridle_core::{Effect, Manifest, ReasonCode};
use serde_json::json;

use crate::common::{HEAD, Req, agent, codes};

/// The commonest rule there is: approval above a threshold, on an amount
/// with no constraint of its own (refused at load before inference).
#[test]
fn an_approval_threshold_needs_no_constraint() {
    let a = agent(
        "tools:\n  - name: pay\n    access: write\n    approval:\n      when: context.args.amount > 5000\n      approvers: [bob]\n",
    );
    let pay = |args| Req::new(&a, "pay").args(args).decide().effect;
    assert_eq!(pay(json!({"amount": 100})), Effect::Allow);
    assert_eq!(pay(json!({"amount": 9000})), Effect::ApprovalRequired);
    // Missing or of another type: the threshold counts as passed.
    assert_eq!(pay(json!({})), Effect::ApprovalRequired);
    assert_eq!(pay(json!({"amount": "100"})), Effect::ApprovalRequired);
    assert_eq!(pay(json!({"amount": 1.5})), Effect::ApprovalRequired);
    assert_eq!(pay(json!({"amount": true})), Effect::ApprovalRequired);
}

#[test]
fn a_when_over_an_unconstrained_argument_fails_closed() {
    let a = agent("tools:\n  - name: ticket.close\n    when: context.args.priority != \"high\"\n");
    let close = |args| Req::new(&a, "ticket.close").args(args).decide();
    assert_eq!(close(json!({"priority": "low"})).effect, Effect::Allow);
    for args in [
        json!({"priority": "high"}),
        json!({}),
        // `5 != "high"` would be true: a wrong type must not pass.
        json!({"priority": 5}),
        json!({"priority": ["high"]}),
    ] {
        let d = close(args.clone());
        assert_eq!(d.effect, Effect::Deny, "{args}");
        assert_eq!(codes(&d), [ReasonCode::ArgConstraint], "{args}");
    }
}

#[test]
fn booleans_and_integers_are_inferred_from_the_expression() {
    let a = agent(
        "tools:\n  - name: deploy\n    when: context.args.dry_run == true || context.args.replicas < 3\n",
    );
    let deploy = |args| Req::new(&a, "deploy").args(args).decide().effect;
    assert_eq!(
        deploy(json!({"dry_run": true, "replicas": 10})),
        Effect::Allow
    );
    assert_eq!(
        deploy(json!({"dry_run": false, "replicas": 2})),
        Effect::Allow
    );
    assert_eq!(
        deploy(json!({"dry_run": false, "replicas": 10})),
        Effect::Deny
    );
    // Every argument the condition reads must be there with its type.
    assert_eq!(deploy(json!({"dry_run": true})), Effect::Deny);
    assert_eq!(
        deploy(json!({"dry_run": "yes", "replicas": 1})),
        Effect::Deny
    );
}

#[test]
fn a_constrained_argument_keeps_its_constraint_type() {
    // `vendor` is a string by its constraint; `amount` is inferred.
    let a = agent(
        "tools:\n  - name: buy\n    args:\n      vendor: { in: [acme] }\n    approval:\n      when: context.args.vendor == \"acme\" && context.args.amount > 10\n      approvers: [bob]\n",
    );
    let buy = |args| Req::new(&a, "buy").args(args).decide().effect;
    assert_eq!(buy(json!({"vendor": "acme", "amount": 5})), Effect::Allow);
    assert_eq!(
        buy(json!({"vendor": "acme", "amount": 50})),
        Effect::ApprovalRequired
    );
    assert_eq!(buy(json!({"vendor": "acme"})), Effect::ApprovalRequired);
}

#[test]
fn conditions_that_no_type_satisfies_are_still_refused() {
    let src = format!(
        "{HEAD}tools:\n  - name: x\n    when: context.args.a > 1 && context.args.a like \"b*\"\n"
    );
    let errs = Manifest::from_source(&src).unwrap_err();
    assert_eq!(errs.errors[0].path, "tools[0].when", "{errs}");
    assert!(
        errs.errors[0].message.contains("does not type-check"),
        "{errs}"
    );
}
