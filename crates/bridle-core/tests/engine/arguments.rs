//! Arguments and data scope: `arg_constraint` (every constraint kind, missing
//! and mistyped arguments, `when` conditions) and `data_scope`.

use bridle_core::{Effect, ReasonCode};
use serde_json::json;

use crate::common::{self, Req, agent, codes};

// --------------------------------------------------------- arg_constraint

const PURCHASE: &str = "\
tools:
  - name: buy
    access: write
    args:
      vendor: { in: [acme, globex] }
      country: { not_in: [xx, yy] }
      amount: { min: 1, max: 1000 }
      sku: { pattern: \"[A-Z]{3}-[0-9]+\" }
      repo: { prefix: \"acme/\" }
";

fn good_purchase() -> serde_json::Value {
    json!({"vendor": "acme", "country": "ie", "amount": 500, "sku": "ABC-12", "repo": "acme/app"})
}

/// Decide `buy` with the good arguments, `key` replaced by `value` (or
/// removed when `value` is null).
fn buy_with(key: &str, value: serde_json::Value) -> bridle_core::Decision {
    let a = agent(PURCHASE);
    let mut args = common::args(good_purchase());
    if value.is_null() {
        args.remove(key);
    } else {
        args.insert(key.to_owned(), value);
    }
    Req::new(&a, "buy")
        .args(serde_json::Value::Object(args))
        .decide()
}

fn assert_arg_failure(d: &bridle_core::Decision, path: &str) {
    assert_eq!(d.effect, Effect::Deny, "{path}: {d:?}");
    assert_eq!(codes(d), [ReasonCode::ArgConstraint], "{path}: {d:?}");
    assert_eq!(d.reasons[0].source.as_ref().unwrap().path, path);
}

#[test]
fn arguments_that_meet_every_constraint_are_granted() {
    let a = agent(PURCHASE);
    let d = Req::new(&a, "buy").args(good_purchase()).decide();
    assert_eq!(d.effect, Effect::Allow, "{d:?}");
    // Boundaries are inclusive; a pattern may match the whole value in any form.
    let d = Req::new(&a, "buy")
        .args(json!({"vendor": "globex", "country": "de", "amount": 1000, "sku": "XYZ-9", "repo": "acme/"}))
        .decide();
    assert_eq!(d.effect, Effect::Allow, "{d:?}");
    assert_eq!(buy_with("amount", json!(1)).effect, Effect::Allow);
}

#[test]
fn in_constraint() {
    let d = buy_with("vendor", json!("evil"));
    assert_arg_failure(&d, "tools[0].args.vendor.in");
    assert!(
        d.reasons[0].message.contains("one of [acme, globex]"),
        "{}",
        d.reasons[0].message
    );
    // Not a case-insensitive or prefix match.
    assert_arg_failure(
        &buy_with("vendor", json!("ACME")),
        "tools[0].args.vendor.in",
    );
    assert_arg_failure(
        &buy_with("vendor", json!("acme2")),
        "tools[0].args.vendor.in",
    );
}

#[test]
fn not_in_constraint() {
    let d = buy_with("country", json!("xx"));
    assert_arg_failure(&d, "tools[0].args.country.not_in");
    assert!(d.reasons[0].message.contains("none of [xx, yy]"));
}

#[test]
fn min_and_max_constraints() {
    let d = buy_with("amount", json!(0));
    assert_arg_failure(&d, "tools[0].args.amount.min");
    assert!(d.reasons[0].message.contains("at least 1"));
    let d = buy_with("amount", json!(1001));
    assert_arg_failure(&d, "tools[0].args.amount.max");
    assert!(d.reasons[0].message.contains("at most 1000"));
    assert_arg_failure(&buy_with("amount", json!(-5)), "tools[0].args.amount.min");
}

#[test]
fn pattern_constraint_is_a_whole_match() {
    assert_arg_failure(
        &buy_with("sku", json!("abc-12")),
        "tools[0].args.sku.pattern",
    );
    // A match inside the value is not enough.
    assert_arg_failure(
        &buy_with("sku", json!("xABC-12")),
        "tools[0].args.sku.pattern",
    );
    assert_arg_failure(
        &buy_with("sku", json!("ABC-12x")),
        "tools[0].args.sku.pattern",
    );
    // A pattern only matches strings.
    assert_arg_failure(&buy_with("sku", json!(12)), "tools[0].args.sku.pattern");
}

#[test]
fn prefix_constraint() {
    let d = buy_with("repo", json!("evil/acme/app"));
    assert_arg_failure(&d, "tools[0].args.repo.prefix");
    assert!(d.reasons[0].message.contains("starting with `acme/`"));
    assert_arg_failure(
        &buy_with("repo", json!("acme")),
        "tools[0].args.repo.prefix",
    );
}

#[test]
fn a_prefix_with_a_star_is_literal() {
    let a = agent("tools:\n  - name: t\n    args:\n      p: { prefix: \"a*\" }\n");
    let ok = Req::new(&a, "t").args(json!({"p": "a*b"})).decide();
    assert_eq!(ok.effect, Effect::Allow);
    let d = Req::new(&a, "t").args(json!({"p": "axb"})).decide();
    assert_eq!(codes(&d), [ReasonCode::ArgConstraint]);
}

#[test]
fn a_missing_constrained_argument_fails_its_constraints() {
    for (arg, path) in [
        ("vendor", "tools[0].args.vendor.in"),
        ("country", "tools[0].args.country.not_in"),
        ("sku", "tools[0].args.sku.pattern"),
        ("repo", "tools[0].args.repo.prefix"),
    ] {
        let d = buy_with(arg, serde_json::Value::Null);
        assert_arg_failure(&d, path);
        assert!(
            d.reasons[0].message.contains("is required"),
            "{}",
            d.reasons[0].message
        );
    }
    // Both `min` and `max` fail for a missing amount.
    let d = buy_with("amount", serde_json::Value::Null);
    assert_eq!(d.effect, Effect::Deny);
    let paths: Vec<_> = d
        .reasons
        .iter()
        .map(|r| r.source.as_ref().unwrap().path.as_str())
        .collect();
    assert_eq!(
        paths,
        ["tools[0].args.amount.min", "tools[0].args.amount.max"]
    );
    assert!(
        d.reasons
            .iter()
            .all(|r| r.code == ReasonCode::ArgConstraint)
    );

    // An explicit null is as good as missing.
    let a = agent(PURCHASE);
    let mut args = common::args(good_purchase());
    args.insert("vendor".into(), serde_json::Value::Null);
    let d = Req::new(&a, "buy")
        .args(serde_json::Value::Object(args))
        .decide();
    assert_arg_failure(&d, "tools[0].args.vendor.in");
}

#[test]
fn a_non_integer_amount_fails_numeric_constraints() {
    for v in [json!("500"), json!(500.5), json!(true), json!([500])] {
        let d = buy_with("amount", v.clone());
        assert_eq!(d.effect, Effect::Deny, "{v}");
        assert!(
            d.reasons
                .iter()
                .all(|r| r.code == ReasonCode::ArgConstraint),
            "{v}: {d:?}"
        );
        assert!(
            d.reasons[0].message.contains("must be an integer"),
            "{v}: {}",
            d.reasons[0].message
        );
    }
}

#[test]
fn every_failed_constraint_is_reported() {
    let a = agent(PURCHASE);
    let d = Req::new(&a, "buy")
        .args(json!({"vendor": "evil", "country": "xx", "amount": 5000, "sku": "nope", "repo": "acme/x"}))
        .decide();
    let paths: Vec<_> = d
        .reasons
        .iter()
        .map(|r| r.source.as_ref().unwrap().path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "tools[0].args.vendor.in",
            "tools[0].args.country.not_in",
            "tools[0].args.amount.max",
            "tools[0].args.sku.pattern"
        ]
    );
}

#[test]
fn a_when_condition_that_does_not_hold_is_an_arg_constraint() {
    let a = agent(
        "tools:\n  - name: deploy\n    args:\n      env: { in: [dev, prod] }\n    when: 'context.args.env != \"prod\" && context.time.hour < 17'\n",
    );
    let ok = Req::new(&a, "deploy").args(json!({"env": "dev"})).decide();
    assert_eq!(ok.effect, Effect::Allow);

    let d = Req::new(&a, "deploy").args(json!({"env": "prod"})).decide();
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::ArgConstraint]);
    let src = d.reasons[0].source.as_ref().unwrap();
    assert_eq!((src.path.as_str(), src.line), ("tools[0].when", Some(10)));
    assert!(d.reasons[0].message.contains("does not hold"));

    // `context.time` is the decision's clock: 17:00 UTC fails the condition.
    let d = Req::new(&a, "deploy")
        .args(json!({"env": "dev"}))
        .at("2026-06-01T17:00:00Z")
        .decide();
    assert_eq!(codes(&d), [ReasonCode::ArgConstraint]);
}

// -------------------------------------------------------------- data_scope

const CRM: &str = "\
tools:
  - name: crm.get_case
  - name: crm.reply_to_case
    access: write
  - name: crm.delete_case
    access: admin
data:
  - { resource: \"crm:cases/*\", access: [read, write] }
  - { resource: \"crm:public/*\", access: [read] }
";

#[test]
fn a_resource_must_be_covered_at_the_grants_access() {
    let a = agent(CRM);
    let read = |r: &str| Req::new(&a, "crm.get_case").resource(r).decide();
    assert_eq!(read("crm:cases/42").effect, Effect::Allow);
    assert_eq!(read("crm:public/faq").effect, Effect::Allow);

    let d = read("crm:users/1");
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::DataScope]);
    assert!(d.reasons[0].message.contains("`crm:users/1`"));
    assert!(d.reasons[0].message.contains("`read`"));

    // Write access is granted on cases, not on the public area.
    let write = |r: &str| Req::new(&a, "crm.reply_to_case").resource(r).decide();
    assert_eq!(write("crm:cases/42").effect, Effect::Allow);
    let d = write("crm:public/faq");
    assert_eq!(codes(&d), [ReasonCode::DataScope]);
    assert!(d.reasons[0].message.contains("`write`"));
    assert_eq!(d.reasons[0].source.as_ref().unwrap().path, "tools[1]");

    // No data grant has `admin` at all.
    let d = Req::new(&a, "crm.delete_case")
        .resource("crm:cases/42")
        .decide();
    assert_eq!(codes(&d), [ReasonCode::DataScope]);
}

#[test]
fn without_a_resource_no_data_grant_is_needed() {
    let a = agent("tools:\n  - name: crm.get_case\n");
    assert_eq!(Req::new(&a, "crm.get_case").decide().effect, Effect::Allow);
    let d = Req::new(&a, "crm.get_case")
        .resource("crm:cases/1")
        .decide();
    assert_eq!(codes(&d), [ReasonCode::DataScope]);
}

#[test]
fn argument_failures_come_before_data_scope() {
    let a = agent(
        "tools:\n  - name: crm.get_case\n    args:\n      id: { prefix: \"C-\" }\ndata:\n  - { resource: \"crm:cases/*\", access: [read] }\n",
    );
    let d = Req::new(&a, "crm.get_case")
        .args(json!({"id": "X-1"}))
        .resource("crm:users/1")
        .decide();
    assert_eq!(codes(&d), [ReasonCode::ArgConstraint]);
}
