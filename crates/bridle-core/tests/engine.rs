//! The decision engine, reason code by reason code, in the decision order of
//! the manifest spec. Every test fixes the clock, the ledger and the approval
//! store, so each rule is checked at exact instants.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use bridle_core::compile::GuardrailError;
use bridle_core::decision::Obligation;
use bridle_core::engine::ApprovalStatus;
use bridle_core::ledger::MemoryLedger;
use bridle_core::manifest::Approver;
use bridle_core::{AgentState, Effect, Guardrails, ReasonCode};
use common::{Approvals, HEAD, Req, agent, agent_named, at, codes, compile_with, example};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

fn approval_id(s: &str) -> bridle_core::id::ApprovalId {
    s.parse().unwrap()
}

// ---------------------------------------------------------------- granted

#[test]
fn granted_names_the_grant_and_its_line() {
    let a = agent("tools:\n  - name: docs.read\n  - name: github.*\n");
    let d = Req::new(&a, "docs.read").decide();
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(codes(&d), [ReasonCode::Granted]);
    let src = d.reasons[0].source.as_ref().unwrap();
    assert_eq!(
        (src.agent.as_str(), src.path.as_str(), src.line),
        ("test-bot", "tools[0]", Some(7))
    );
    assert!(d.approval.is_none() && d.consumes.is_none());

    // A glob grant's `*` spans dots.
    let d = Req::new(&a, "github.repos.get").decide();
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(d.reasons[0].source.as_ref().unwrap().path, "tools[1]");
}

// ------------------------------------------------------------ not_granted

#[test]
fn anything_not_granted_is_denied() {
    let a = agent("tools:\n  - name: docs.read\n  - name: github.*\n");
    for action in ["docs.write", "docs.read.all", "gitlab.x", "github"] {
        let d = Req::new(&a, action).decide();
        assert_eq!(d.effect, Effect::Deny, "{action}");
        assert_eq!(codes(&d), [ReasonCode::NotGranted], "{action}");
        assert!(d.reasons[0].message.contains(action), "{action}");
    }
}

#[test]
fn an_empty_or_absent_tool_list_grants_nothing() {
    for body in ["tools: []\n", ""] {
        let a = agent(body);
        let d = Req::new(&a, "anything").decide();
        assert_eq!(codes(&d), [ReasonCode::NotGranted], "{body:?}");
        assert_eq!(d.effect, Effect::Deny);
    }
}

#[test]
fn a_request_without_any_agent_is_denied() {
    let subjects: [bridle_core::Subject<'_>; 0] = [];
    let args = serde_json::Map::new();
    let input = bridle_core::DecisionInput {
        subjects: &subjects,
        scope: None,
        action: bridle_core::ActionRequest {
            name: "x",
            args: &args,
            resource: None,
        },
        now: at(common::NOON),
    };
    let d = bridle_core::Engine::new().decide(&input, &MemoryLedger::new(), &Approvals::new());
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::NotGranted]);
}

// -------------------------------------------------------------- forbidden

#[test]
fn a_manifest_forbid_beats_any_grant() {
    let a = agent("tools:\n  - name: '*'\nforbid: [secrets.*, github.merge_pull_request]\n");
    let d = Req::new(&a, "secrets.read").decide();
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::Forbidden]);
    let src = d.reasons[0].source.as_ref().unwrap();
    assert_eq!((src.path.as_str(), src.line), ("forbid[0]", Some(8)));
    assert!(d.reasons[0].message.contains("`secrets.*`"));

    let d = Req::new(&a, "github.merge_pull_request").decide();
    assert_eq!(codes(&d), [ReasonCode::Forbidden]);
    assert_eq!(d.reasons[0].source.as_ref().unwrap().path, "forbid[1]");

    // Everything else is still granted by `*`.
    assert_eq!(
        Req::new(&a, "github.create_pull_request").decide().effect,
        Effect::Allow
    );
}

#[test]
fn an_organisation_guardrail_forbids_for_every_agent() {
    let mut g = Guardrails::new();
    g.add(
        "org",
        r#"forbid (principal, action, resource == Tool::"payments.wire");"#,
    )
    .unwrap();
    g.add(
        "naming",
        r#"@id("no-deletes") forbid (principal, action, resource) when { context.tool like "*.delete" };"#,
    )
    .unwrap();
    let a = compile_with(&format!("{HEAD}tools:\n  - name: '*'\n"), &g);

    let d = Req::new(&a, "payments.wire").decide();
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::Forbidden]);
    assert_eq!(
        d.reasons[0].source.as_ref().unwrap().path,
        "guardrail:org/0"
    );
    assert!(d.reasons[0].message.contains("guardrail `org/0`"));

    let d = Req::new(&a, "github.repo.delete").decide();
    assert_eq!(codes(&d), [ReasonCode::Forbidden]);
    assert_eq!(
        d.reasons[0].source.as_ref().unwrap().path,
        "guardrail:naming/no-deletes"
    );

    assert_eq!(Req::new(&a, "payments.list").decide().effect, Effect::Allow);

    // The same guardrails bind every agent compiled with them, and they also
    // bind an agent acting as a delegate.
    let other = compile_with(
        &format!("{HEAD}tools:\n  - name: payments.*\n").replace("test-bot", "other-bot"),
        &g,
    );
    assert_eq!(
        codes(&Req::new(&other, "payments.wire").decide()),
        [ReasonCode::Forbidden]
    );
    let plain = agent("tools:\n  - name: '*'\n");
    let d = Req::new(&plain, "payments.wire").delegate(&other).decide();
    assert_eq!(codes(&d), [ReasonCode::Forbidden]);
    assert_eq!(d.reasons[0].source.as_ref().unwrap().agent, "other-bot");
}

#[test]
fn a_guardrail_that_cannot_be_evaluated_denies() {
    let mut g = Guardrails::new();
    g.add(
        "limits",
        "forbid(principal,action,resource) when { context.args.amount > 10 };",
    )
    .unwrap();
    let a = compile_with(&format!("{HEAD}tools:\n  - name: pay\n"), &g);

    // `amount` missing: the forbid errors, and an erroring forbid fails closed.
    let d = Req::new(&a, "pay").decide();
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::Forbidden]);
    assert!(
        d.reasons[0].message.contains("could not be evaluated"),
        "{}",
        d.reasons[0].message
    );
    // A string where the guardrail compares numbers: also an error, also denied.
    let d = Req::new(&a, "pay").args(json!({"amount": "5"})).decide();
    assert_eq!(codes(&d), [ReasonCode::Forbidden]);

    // Evaluable: the guardrail decides on its merits.
    let d = Req::new(&a, "pay").args(json!({"amount": 5})).decide();
    assert_eq!(d.effect, Effect::Allow);
    let d = Req::new(&a, "pay").args(json!({"amount": 50})).decide();
    assert_eq!(codes(&d), [ReasonCode::Forbidden]);
    assert!(!d.reasons[0].message.contains("could not be evaluated"));
}

#[test]
fn guardrails_may_only_forbid() {
    let mut g = Guardrails::new();
    let err = g
        .add("grant", "permit(principal, action, resource);")
        .unwrap_err();
    assert!(matches!(err, GuardrailError::Permit { .. }), "{err}");
    // One permit among forbids rejects the whole file.
    let err = g
        .add(
            "mixed",
            r#"forbid(principal, action, resource == Tool::"a"); permit(principal, action, resource);"#,
        )
        .unwrap_err();
    assert!(matches!(err, GuardrailError::Permit { .. }), "{err}");
    let err = g.add("broken", "forbid(principal, action").unwrap_err();
    assert!(matches!(err, GuardrailError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("`broken`"), "{err}");
    assert!(g.is_empty(), "a rejected file must add nothing");

    // And nothing of the rejected files reached the agent.
    let a = compile_with(&format!("{HEAD}tools:\n  - name: a\n"), &g);
    assert_eq!(Req::new(&a, "a").decide().effect, Effect::Allow);
    assert_eq!(codes(&Req::new(&a, "b").decide()), [ReasonCode::NotGranted]);
}

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

// -------------------------------------------------------- outside_schedule

#[test]
fn the_schedule_is_read_in_the_agents_time_zone() {
    let a = agent(
        "tools:\n  - name: t\nschedule:\n  timezone: America/New_York\n  windows: [\"Mon-Fri 09:00-17:00\"]\n",
    );
    // 2026-06-01 is a Monday; New York is UTC-4 in June.
    let d = Req::new(&a, "t").at("2026-06-01T12:59:00Z").decide();
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::OutsideSchedule]);
    assert!(
        d.reasons[0]
            .message
            .contains("Mon 08:59 America/New_York is outside the schedule (Mon-Fri 09:00-17:00)"),
        "{}",
        d.reasons[0].message
    );
    assert_eq!(
        d.reasons[0].source.as_ref().unwrap().path,
        "schedule.windows"
    );
    assert_eq!(
        Req::new(&a, "t").at("2026-06-01T13:00:00Z").decide().effect,
        Effect::Allow
    );
    assert_eq!(
        Req::new(&a, "t").at("2026-06-01T20:59:00Z").decide().effect,
        Effect::Allow
    );
    // The end of a window is exclusive.
    let d = Req::new(&a, "t").at("2026-06-01T21:00:00Z").decide();
    assert_eq!(codes(&d), [ReasonCode::OutsideSchedule]);
    // Saturday 2026-06-06 at New York noon.
    let d = Req::new(&a, "t").at("2026-06-06T16:00:00Z").decide();
    assert_eq!(codes(&d), [ReasonCode::OutsideSchedule]);
}

#[test]
fn an_overnight_window_runs_into_the_next_day() {
    let a = agent(
        "tools:\n  - name: t\nschedule:\n  timezone: Asia/Tokyo\n  windows: [\"Fri 22:00-06:00\"]\n",
    );
    // Tokyo is UTC+9 all year. Friday 2026-06-05.
    let when = |utc: &str| Req::new(&a, "t").at(utc).decide();
    assert_eq!(when("2026-06-05T13:00:00Z").effect, Effect::Allow); // Fri 22:00
    assert_eq!(when("2026-06-05T20:59:00Z").effect, Effect::Allow); // Sat 05:59
    for utc in [
        "2026-06-05T12:59:00Z", // Fri 21:59
        "2026-06-05T21:00:00Z", // Sat 06:00
        "2026-06-04T20:00:00Z", // Fri 05:00: the morning after Thursday
        "2026-06-06T13:00:00Z", // Sat 22:00
    ] {
        assert_eq!(codes(&when(utc)), [ReasonCode::OutsideSchedule], "{utc}");
    }
}

#[test]
fn the_schedule_comes_before_forbid() {
    let a = agent(
        "tools:\n  - name: t\nforbid: [t]\nschedule:\n  timezone: UTC\n  windows: [\"Mon 00:00-01:00\"]\n",
    );
    assert_eq!(
        codes(&Req::new(&a, "t").decide()),
        [ReasonCode::OutsideSchedule]
    );
    assert_eq!(
        codes(&Req::new(&a, "t").at("2026-06-01T00:30:00Z").decide()),
        [ReasonCode::Forbidden]
    );
}

// --------------------------------------------- agent_suspended, agent_expired

#[test]
fn suspended_and_retired_agents_are_denied_everything() {
    let a = agent("tools:\n  - name: t\nforbid: [f]\n");
    for state in [AgentState::Suspended, AgentState::Retired] {
        for action in ["t", "f", "unknown"] {
            let d = Req::new(&a, action).state(state).decide();
            assert_eq!(d.effect, Effect::Deny);
            assert_eq!(
                codes(&d),
                [ReasonCode::AgentSuspended],
                "{state:?} {action}"
            );
            assert!(d.reasons[0].message.contains(state.as_str()));
        }
    }
    assert_eq!(Req::new(&a, "t").decide().effect, Effect::Allow);
}

#[test]
fn an_agent_is_denied_after_its_expiry_day() {
    let a = agent("tools:\n  - name: t\n");
    // `expires: 2027-12-31`: the whole day is still allowed.
    assert_eq!(
        Req::new(&a, "t").at("2027-12-31T23:59:59Z").decide().effect,
        Effect::Allow
    );
    let d = Req::new(&a, "t").at("2028-01-01T00:00:00Z").decide();
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::AgentExpired]);
    assert!(d.reasons[0].message.contains("2027-12-31"));
    assert_eq!(d.reasons[0].source.as_ref().unwrap().path, "expires");
}

#[test]
fn expiry_is_judged_in_the_schedules_time_zone() {
    let a = agent(
        "tools:\n  - name: t\nschedule:\n  timezone: Asia/Tokyo\n  windows: [\"daily 00:00-24:00\"]\n",
    );
    // 15:00 UTC on the last day is already the next day in Tokyo.
    assert_eq!(
        Req::new(&a, "t").at("2027-12-31T14:59:00Z").decide().effect,
        Effect::Allow
    );
    assert_eq!(
        codes(&Req::new(&a, "t").at("2027-12-31T15:00:00Z").decide()),
        [ReasonCode::AgentExpired]
    );
}

#[test]
fn suspension_and_expiry_come_first() {
    let a = agent(
        "tools:\n  - name: t\nschedule:\n  timezone: UTC\n  windows: [\"Mon 00:00-01:00\"]\n",
    );
    // Expired and outside the schedule: expiry is step 1.
    assert_eq!(
        codes(&Req::new(&a, "t").at("2028-06-05T12:00:00Z").decide()),
        [ReasonCode::AgentExpired]
    );
    // Suspended and expired: suspension is reported.
    assert_eq!(
        codes(
            &Req::new(&a, "t")
                .at("2028-06-05T12:00:00Z")
                .state(AgentState::Suspended)
                .decide()
        ),
        [ReasonCode::AgentSuspended]
    );
}

// ----------------------------------------------- rate_limited, budget_exceeded

fn secs(t: Timestamp, s: i64) -> Timestamp {
    t + SignedDuration::from_secs(s)
}

#[test]
fn the_rate_limit_counts_a_rolling_window() {
    let a = agent("tools:\n  - name: t\n  - name: u\nlimits:\n  rate: 3/min\n");
    let ledger = MemoryLedger::new();
    let t0 = at(common::NOON);
    let go = |action: &str, s: i64| {
        Req::new(&a, action)
            .now(secs(t0, s))
            .decide_with(&ledger, &Approvals::new())
    };
    assert_eq!(go("t", 0).effect, Effect::Allow);
    assert_eq!(go("u", 10).effect, Effect::Allow);
    // Denials are not counted.
    assert_eq!(codes(&go("nope", 15)), [ReasonCode::NotGranted]);
    assert_eq!(go("t", 20).effect, Effect::Allow);
    let d = go("t", 30);
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::RateLimited]);
    assert!(
        d.reasons[0].message.contains("3/1m"),
        "{}",
        d.reasons[0].message
    );
    assert_eq!(d.reasons[0].source.as_ref().unwrap().path, "limits.rate");
    assert_eq!(codes(&go("u", 59)), [ReasonCode::RateLimited]);
    // At 60s the action at 0s has left the window.
    assert_eq!(go("t", 60).effect, Effect::Allow);
    assert_eq!(codes(&go("t", 61)), [ReasonCode::RateLimited]);
    // Each agent has its own count.
    let other = agent_named("other-bot", "tools:\n  - name: t\nlimits:\n  rate: 3/min\n");
    let d = Req::new(&other, "t")
        .now(secs(t0, 61))
        .decide_with(&ledger, &Approvals::new());
    assert_eq!(d.effect, Effect::Allow);
}

const BUDGETED: &str = "\
tools:
  - name: pay
    args:
      amount: { min: 1, max: 100000 }
    approval:
      when: context.args.amount > 5000
      approvers: [group:finance]
limits:
  budgets:
    - { arg: amount, max: 10000, per: 24h }
";

#[test]
fn a_budget_sums_allowed_amounts_over_a_rolling_window() {
    let a = agent(BUDGETED);
    let ledger = MemoryLedger::new();
    let t0 = at(common::NOON);
    let pay = |amount: i64, s: i64| {
        Req::new(&a, "pay")
            .args(json!({"amount": amount}))
            .now(secs(t0, s))
            .decide_with(&ledger, &Approvals::new())
    };
    assert_eq!(pay(4000, 0).effect, Effect::Allow);
    assert_eq!(pay(4000, 3600).effect, Effect::Allow);
    let d = pay(2001, 7200);
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::BudgetExceeded]);
    assert!(
        d.reasons[0].message.contains("8000 spent") && d.reasons[0].message.contains("10000"),
        "{}",
        d.reasons[0].message
    );
    let src = d.reasons[0].source.as_ref().unwrap();
    assert_eq!(
        (src.path.as_str(), src.line),
        ("limits.budgets[0]", Some(15))
    );
    // The refused amount was not spent: exactly the remainder still fits.
    assert_eq!(pay(2000, 7300).effect, Effect::Allow);
    assert_eq!(codes(&pay(1, 7400)), [ReasonCode::BudgetExceeded]);
    // 24h after the first payment, its 4000 are available again (not more).
    assert_eq!(codes(&pay(4001, 86_400)), [ReasonCode::BudgetExceeded]);
    assert_eq!(pay(4000, 86_400).effect, Effect::Allow);
    // Still inside the window: 2000 (at 7300s) and 4000 (at 24h) are spent.
    assert_eq!(
        codes(&pay(4001, 7299 + 86_400)),
        [ReasonCode::BudgetExceeded]
    );
    // Once every payment has left the window, the whole budget is back.
    assert_eq!(pay(5000, 2 * 86_400).effect, Effect::Allow);
    assert_eq!(pay(5000, 2 * 86_400).effect, Effect::Allow);
    assert_eq!(codes(&pay(1, 2 * 86_400)), [ReasonCode::BudgetExceeded]);
}

#[test]
fn approval_required_decisions_spend_nothing_but_approved_ones_do() {
    let a = agent(BUDGETED);
    let t0 = at(common::NOON);

    // 9000 needs approval; asking for it spends nothing.
    let ledger = MemoryLedger::new();
    let big = Req::new(&a, "pay").args(json!({"amount": 9000})).now(t0);
    let d = big.decide_with(&ledger, &Approvals::new());
    assert_eq!(d.effect, Effect::ApprovalRequired);
    let small = |s| {
        Req::new(&a, "pay")
            .args(json!({"amount": 5000}))
            .now(secs(t0, s))
            .decide_with(&ledger, &Approvals::new())
    };
    assert_eq!(small(1).effect, Effect::Allow);
    assert_eq!(small(2).effect, Effect::Allow);
    assert_eq!(codes(&small(3)), [ReasonCode::BudgetExceeded]);

    // Once approved, the 9000 count against the budget.
    let ledger = MemoryLedger::new();
    let approvals = Approvals::new().with(big.key(), ApprovalStatus::Granted(approval_id("ap-1")));
    let d = big.decide_with(&ledger, &approvals);
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(codes(&d), [ReasonCode::Approved]);
    let d = Req::new(&a, "pay")
        .args(json!({"amount": 1001}))
        .now(secs(t0, 1))
        .decide_with(&ledger, &Approvals::new());
    assert_eq!(codes(&d), [ReasonCode::BudgetExceeded]);
}

#[test]
fn limits_are_checked_before_approval() {
    let a = agent(BUDGETED);
    // 20000 would need approval, but it can never fit the 10000 budget.
    let d = Req::new(&a, "pay").args(json!({"amount": 20000})).decide();
    assert_eq!(codes(&d), [ReasonCode::BudgetExceeded]);
    assert!(d.approval.is_none());
}

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
fn a_grant_without_approval_wins_over_one_with_approval() {
    let a = agent(
        "tools:\n  - name: pay\n    approval:\n      approvers: [bob]\n  - name: pay\n    args:\n      amount: { max: 100 }\n",
    );
    let d = Req::new(&a, "pay").args(json!({"amount": 50})).decide();
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(d.reasons[0].source.as_ref().unwrap().path, "tools[1]");
    let d = Req::new(&a, "pay").args(json!({"amount": 500})).decide();
    assert_eq!(d.effect, Effect::ApprovalRequired);
}

// --------------------------------------------------------------- elevation

const ELEVATING: &str = "\
tools:
  - name: edr.quarantine_endpoint
forbid: [secrets.rotate]
elevation:
  - name: identity-write
    tools: [identity.disable_user, secrets.*]
    max_duration: 1h
    approvers: [group:secops]
";

#[test]
fn an_active_elevation_grants_its_tools() {
    let a = agent(ELEVATING);
    let d = Req::new(&a, "identity.disable_user")
        .elevation("identity-write")
        .decide();
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(codes(&d), [ReasonCode::Elevated]);
    assert!(d.reasons[0].message.contains("`identity-write`"));
    let src = d.reasons[0].source.as_ref().unwrap();
    assert_eq!(
        (src.path.as_str(), src.line),
        ("elevation[0].tools[0]", Some(10))
    );
    // Glob tools of the elevation too.
    let d = Req::new(&a, "secrets.read")
        .elevation("identity-write")
        .decide();
    assert_eq!(codes(&d), [ReasonCode::Elevated]);
}

#[test]
fn an_inactive_elevation_grants_nothing() {
    let a = agent(ELEVATING);
    let d = Req::new(&a, "identity.disable_user").decide();
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::NotGranted]);
    assert!(
        d.reasons[0]
            .message
            .contains("elevation `identity-write` grants it while active"),
        "{}",
        d.reasons[0].message
    );
    // Another elevation's name does not activate this one.
    let d = Req::new(&a, "identity.disable_user")
        .elevation("something-else")
        .decide();
    assert_eq!(codes(&d), [ReasonCode::NotGranted]);
}

#[test]
fn an_elevation_never_overrides_a_forbid() {
    let a = agent(ELEVATING);
    let d = Req::new(&a, "secrets.rotate")
        .elevation("identity-write")
        .decide();
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::Forbidden]);

    let mut g = Guardrails::new();
    g.add(
        "org",
        r#"forbid(principal, action, resource == Tool::"identity.disable_user");"#,
    )
    .unwrap();
    let guarded = compile_with(&format!("{HEAD}{ELEVATING}"), &g);
    let d = Req::new(&guarded, "identity.disable_user")
        .elevation("identity-write")
        .decide();
    assert_eq!(codes(&d), [ReasonCode::Forbidden]);
}

#[test]
fn elevated_tools_still_need_data_scope() {
    let a = agent(&format!(
        "{ELEVATING}data:\n  - {{ resource: \"dir:users/*\", access: [read] }}\n"
    ));
    let req = |r: &str| {
        Req::new(&a, "identity.disable_user")
            .elevation("identity-write")
            .resource(r)
            .decide()
    };
    assert_eq!(codes(&req("dir:users/7")), [ReasonCode::Elevated]);
    assert_eq!(codes(&req("dir:admins/1")), [ReasonCode::DataScope]);
}

// -------------------------------------------------------------- delegation

#[test]
fn a_delegate_gets_only_what_both_records_allow() {
    let swe = example("swe-bot");
    let runner = example("test-runner");
    let chain = |action: &str| Req::new(&swe, action).delegate(&runner).decide();

    let d = chain("ci.run_tests");
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(codes(&d), [ReasonCode::Granted, ReasonCode::Granted]);
    let agents: Vec<_> = d
        .reasons
        .iter()
        .map(|r| r.source.as_ref().unwrap().agent.as_str())
        .collect();
    assert_eq!(agents, ["swe-bot", "test-runner"]);

    // test-runner may read secrets on its own; acting for swe-bot it may not.
    assert_eq!(
        Req::new(&runner, "secrets.read").decide().effect,
        Effect::Allow
    );
    let d = chain("secrets.read");
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::Forbidden]);
    assert_eq!(d.reasons[0].source.as_ref().unwrap().agent, "swe-bot");
    assert!(d.reasons[0].message.starts_with("`swe-bot`: "));

    // ci.deploy: test-runner's `ci.*` covers it, swe-bot grants no such tool.
    assert_eq!(
        Req::new(&runner, "ci.deploy").decide().effect,
        Effect::Allow
    );
    let d = chain("ci.deploy");
    assert_eq!(codes(&d), [ReasonCode::NotGranted]);
    assert!(d.reasons[0].message.contains("`swe-bot`"));

    // And the other way: swe-bot may open PRs, test-runner may not.
    let d = Req::new(&swe, "github.create_pull_request")
        .args(json!({"repo": "acme/app"}))
        .delegate(&runner)
        .decide();
    assert_eq!(codes(&d), [ReasonCode::NotGranted]);
    assert!(d.reasons[0].message.starts_with("`test-runner`: "));
}

#[test]
fn every_agent_in_the_chain_must_be_active() {
    let swe = example("swe-bot");
    let runner = example("test-runner");
    let d = Req::new(&swe, "ci.run_tests")
        .delegate(&runner)
        .state(AgentState::Suspended)
        .decide();
    assert_eq!(codes(&d), [ReasonCode::AgentSuspended]);
    assert!(d.reasons[0].message.contains("test-runner"));
    let d = Req::new(&swe, "ci.run_tests")
        .state(AgentState::Retired)
        .delegate(&runner)
        .decide();
    assert_eq!(codes(&d), [ReasonCode::AgentSuspended]);
    assert!(d.reasons[0].message.contains("swe-bot"));
}

#[test]
fn a_delegated_token_is_confined_to_its_scope() {
    let swe = example("swe-bot");
    let runner = example("test-runner");
    let chain = |action: &str, scope: &[&str]| {
        Req::new(&swe, action)
            .delegate(&runner)
            .scope(scope)
            .decide()
    };
    assert_eq!(
        chain("ci.run_tests", &["ci.run_tests"]).effect,
        Effect::Allow
    );
    assert_eq!(chain("ci.run_tests", &["ci.*"]).effect, Effect::Allow);
    let d = chain("ci.run_tests", &["ci.lint", "github.get_*"]);
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::DelegationScope]);
    assert!(d.reasons[0].message.contains("ci.lint github.get_*"));
    // An empty scope admits nothing.
    assert_eq!(
        codes(&chain("ci.run_tests", &[])),
        [ReasonCode::DelegationScope]
    );
    // The scope narrows; it never widens what the records deny.
    assert_eq!(
        codes(&chain("secrets.read", &["*"])),
        [ReasonCode::Forbidden]
    );
}

#[test]
fn each_agent_in_the_chain_spends_its_own_limits() {
    let delegator = agent("tools:\n  - name: t\nlimits:\n  rate: 2/min\n");
    let delegate = agent_named("helper", "tools:\n  - name: t\n");
    let ledger = MemoryLedger::new();
    let t0 = at(common::NOON);
    // The delegator acts once on its own, once through the delegate.
    let d = Req::new(&delegator, "t")
        .now(t0)
        .decide_with(&ledger, &Approvals::new());
    assert_eq!(d.effect, Effect::Allow);
    let d = Req::new(&delegator, "t")
        .delegate(&delegate)
        .now(secs(t0, 1))
        .decide_with(&ledger, &Approvals::new());
    assert_eq!(d.effect, Effect::Allow);
    // Its rate is used up either way.
    let d = Req::new(&delegator, "t")
        .delegate(&delegate)
        .now(secs(t0, 2))
        .decide_with(&ledger, &Approvals::new());
    assert_eq!(codes(&d), [ReasonCode::RateLimited]);
    assert!(d.reasons[0].message.starts_with("`test-bot`: "));
    // The delegate has no limit of its own.
    let d = Req::new(&delegate, "t")
        .now(secs(t0, 3))
        .decide_with(&ledger, &Approvals::new());
    assert_eq!(d.effect, Effect::Allow);
}

// ------------------------------------------------------------- obligations

#[test]
fn research_bot_decisions_carry_the_log_retrieval_obligation() {
    let research = example("research-bot");
    let d = Req::new(&research, "web.search").decide();
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(d.obligations, [Obligation::LogRetrieval]);
    let d = Req::new(&research, "web.fetch")
        .args(json!({"url": "https://example.com/a"}))
        .decide();
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(d.obligations, [Obligation::LogRetrieval]);
    // "Every decision": a denial is logged for retrieval review too.
    let d = Req::new(&research, "web.fetch")
        .args(json!({"url": "http://example.com/a"}))
        .decide();
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.obligations, [Obligation::LogRetrieval]);
    // Agents without `log_retrievals` carry none.
    let swe = example("swe-bot");
    assert!(
        Req::new(&swe, "ci.run_tests")
            .decide()
            .obligations
            .is_empty()
    );
}

#[test]
fn the_obligation_follows_any_logging_agent_in_a_chain() {
    let research = example("research-bot");
    let helper = agent_named("helper", "tools:\n  - name: web.*\n");
    let d = Req::new(&helper, "web.search").delegate(&research).decide();
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(d.obligations, [Obligation::LogRetrieval]);
}

#[test]
fn approval_required_decisions_carry_obligations_too() {
    let a = agent(
        "tools:\n  - name: t\n    approval:\n      approvers: [bob]\nmonitoring:\n  log_retrievals: true\n",
    );
    let d = Req::new(&a, "t").decide();
    assert_eq!(d.effect, Effect::ApprovalRequired);
    assert_eq!(d.obligations, [Obligation::LogRetrieval]);
}

// ------------------------------------------------------------ determinism

/// Cedar reports satisfied policies as a set; the explanation must not
/// depend on its iteration order (audit records and snapshots compare them).
#[test]
fn explanations_are_deterministic_and_in_manifest_order() {
    let mut g = Guardrails::new();
    g.add(
        "org",
        r#"forbid(principal, action, resource == Tool::"x.y");"#,
    )
    .unwrap();
    let a = compile_with(
        &format!(
            "{HEAD}tools:\n  - name: a.b\n  - name: a.*\n  - name: '*'\nforbid: [x.y, 'x.*', '*.y']\nelevation:\n  - name: up\n    tools: [e.*, e.f]\n    max_duration: 1h\n    approvers: [bob]\n"
        ),
        &g,
    );
    let paths = |d: &bridle_core::Decision| -> Vec<String> {
        d.reasons
            .iter()
            .map(|r| r.source.as_ref().unwrap().path.clone())
            .collect()
    };
    for _ in 0..50 {
        assert_eq!(paths(&Req::new(&a, "a.b").decide()), ["tools[0]"]);
        assert_eq!(
            paths(&Req::new(&a, "x.y").decide()),
            ["forbid[0]", "forbid[1]", "forbid[2]", "guardrail:org/0"]
        );
        let up = Req::new(&a, "e.f").elevation("up").decide();
        // `*` grants it outright; without that grant the first elevation tool decides.
        assert_eq!(paths(&up), ["tools[2]"]);
    }
    let b = agent(
        "tools: []\nelevation:\n  - name: up\n    tools: [e.*, e.f]\n    max_duration: 1h\n    approvers: [bob]\n",
    );
    for _ in 0..50 {
        let d = Req::new(&b, "e.f").elevation("up").decide();
        assert_eq!(paths(&d), ["elevation[0].tools[0]"]);
    }
}

// ------------------------------------------------------------- every code

/// One scenario per reason code of the API contract: a new code without a
/// scenario here fails this test.
#[test]
fn every_reason_code_of_the_contract_is_produced() {
    let mut seen = HashSet::new();
    let mut note = |d: bridle_core::Decision| seen.extend(codes(&d));

    let p = example("procurement-bot");
    let buy = |amount: i64| {
        Req::new(&p, "procurement.create_purchase_request")
            .args(json!({"vendor": "acme", "amount": amount}))
    };
    note(buy(700).decide());
    let k = buy(7000).key();
    note(buy(7000).decide_with(
        &MemoryLedger::new(),
        &Approvals::new().with(k.clone(), ApprovalStatus::Granted(approval_id("a1"))),
    ));
    note(buy(7000).decide_with(
        &MemoryLedger::new(),
        &Approvals::new().with(k, ApprovalStatus::Denied(approval_id("a2"))),
    ));
    note(buy(7000).decide());
    note(buy(0).decide());
    note(buy(60000).decide());
    note(Req::new(&p, "procurement.approve_po").decide());
    note(Req::new(&p, "procurement.delete").decide());
    note(
        Req::new(&p, "procurement.list_vendors")
            .state(AgentState::Suspended)
            .decide(),
    );
    note(
        Req::new(&p, "procurement.list_vendors")
            .at("2028-01-01T00:00:00Z")
            .decide(),
    );
    let rated = agent("tools:\n  - name: t\nlimits:\n  rate: 1/min\n");
    let ledger = MemoryLedger::new();
    note(Req::new(&rated, "t").decide_with(&ledger, &Approvals::new()));
    note(Req::new(&rated, "t").decide_with(&ledger, &Approvals::new()));

    let s = example("support-bot");
    note(
        Req::new(&s, "crm.get_case")
            .resource("crm:users/1")
            .decide(),
    );
    note(
        Req::new(&s, "crm.get_case")
            .at("2026-06-07T12:00:00Z")
            .decide(),
    );

    let (swe, runner) = (example("swe-bot"), example("test-runner"));
    note(
        Req::new(&swe, "ci.run_tests")
            .delegate(&runner)
            .scope(&["github.*"])
            .decide(),
    );

    let ir = example("ir-bot");
    note(
        Req::new(&ir, "identity.disable_user")
            .elevation("identity-write")
            .decide(),
    );

    let missing: Vec<_> = ReasonCode::ALL
        .iter()
        .filter(|c| !seen.contains(*c))
        .collect();
    assert!(missing.is_empty(), "never produced: {missing:?}");
}
