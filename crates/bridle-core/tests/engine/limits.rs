//! Limits: `rate_limited` and `budget_exceeded` over rolling windows, and
//! what counts against them.

use bridle_core::engine::ApprovalStatus;
use bridle_core::ledger::MemoryLedger;
use bridle_core::{Effect, ReasonCode};
use serde_json::json;

use crate::common::{self, Approvals, Req, agent, agent_named, at, codes};
use crate::{approval_id, secs};

// ----------------------------------------------- rate_limited, budget_exceeded

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

/// Payments under a single-request approval threshold, with a budget that
/// asks the approvers (instead of denying) once the day's sum would pass
/// 5000: the answer to approval structuring.
const SUM_ASKS: &str = "\
tools:
  - name: pay
    args:
      amount: { min: 1, max: 100000 }
    approval:
      when: context.args.amount > 2000
      approvers: [group:finance]
limits:
  budgets:
    - arg: amount
      max: 5000
      per: 24h
      approval:
        approvers: [group:finance]
        ttl: 1h
";

#[test]
fn a_budget_that_asks_needs_approval_past_its_maximum_and_spends_once_approved() {
    let a = agent(SUM_ASKS);
    let ledger = MemoryLedger::new();
    let t0 = at(common::NOON);
    let pay = |amount: i64, s: i64, approvals: &Approvals| {
        Req::new(&a, "pay")
            .args(json!({"amount": amount}))
            .now(secs(t0, s))
            .decide_with(&ledger, approvals)
    };
    let none = Approvals::new();
    // Each under the 2000 threshold; the first two fit the day's 5000.
    assert_eq!(pay(1999, 0, &none).effect, Effect::Allow);
    assert_eq!(pay(1999, 60, &none).effect, Effect::Allow);
    // The third would take the sum to 5997: it asks instead of passing.
    let d = pay(1999, 120, &none);
    assert_eq!(d.effect, Effect::ApprovalRequired, "{d:?}");
    assert_eq!(codes(&d), [ReasonCode::ApprovalRequired]);
    let src = d.reasons[0].source.as_ref().unwrap();
    assert_eq!(
        (src.path.as_str(), src.line),
        ("limits.budgets[0].approval", Some(19))
    );
    let msg = &d.reasons[0].message;
    assert!(
        msg.contains("past 5000") && msg.contains("3998 spent") && msg.contains("1999 more"),
        "{msg}"
    );
    let need = d.approval.as_ref().unwrap();
    assert_eq!(need.ttl_seconds, 3600);
    // Asking spent nothing: a payment that still fits passes.
    assert_eq!(pay(1000, 130, &none).effect, Effect::Allow);
    // Approved, the exact request passes the maximum and is spent.
    let third = Req::new(&a, "pay")
        .args(json!({"amount": 1999}))
        .now(secs(t0, 120));
    let approved = Approvals::new().with(third.key(), ApprovalStatus::Granted(approval_id("ap-1")));
    let d = pay(1999, 120, &approved);
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(codes(&d), [ReasonCode::Approved]);
    // 6997 spent: every further payment of the day asks, however small.
    let d = pay(1, 200, &none);
    assert_eq!(d.effect, Effect::ApprovalRequired);
    assert!(d.reasons[0].message.contains("6997 spent"), "{d:?}");
    // A day later the window has emptied again.
    assert_eq!(pay(1999, 86_400 + 200, &none).effect, Effect::Allow);
}

#[test]
fn a_grant_rule_asks_first_and_a_denied_budget_still_denies() {
    let a = agent(SUM_ASKS);
    let ledger = MemoryLedger::new();
    // Over the single-request threshold and the day's sum at once: the
    // grant's rule is the one that asks.
    let d = Req::new(&a, "pay")
        .args(json!({"amount": 6000}))
        .decide_with(&ledger, &Approvals::new());
    assert_eq!(d.effect, Effect::ApprovalRequired);
    let src = d.reasons[0].source.as_ref().unwrap();
    assert_eq!(src.path, "tools[0].approval");
    // A hard budget beside it still denies past its own maximum.
    let both = agent(&SUM_ASKS.replace(
        "limits:\n  budgets:\n",
        "limits:\n  budgets:\n    - { arg: amount, max: 7000, per: 24h }\n",
    ));
    let d = Req::new(&both, "pay")
        .args(json!({"amount": 1999}))
        .decide_with(&ledger, &Approvals::new());
    assert_eq!(d.effect, Effect::Allow);
    let d = Req::new(&both, "pay")
        .args(json!({"amount": 8000}))
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

/// A budget on an argument no grant constrains: only the budget decides
/// what the argument may be.
const UNCONSTRAINED_BUDGET: &str = "\
tools:
  - name: pay
limits:
  budgets:
    - { arg: amount, max: 10000, per: 24h }
";

#[test]
fn a_budgeted_argument_must_be_a_non_negative_integer() {
    let t0 = at(common::NOON);
    for source in [UNCONSTRAINED_BUDGET, BUDGETED] {
        let a = agent(source);
        let ledger = MemoryLedger::new();
        let pay = |amount: serde_json::Value| {
            Req::new(&a, "pay")
                .args(json!({ "amount": amount }))
                .now(t0)
                .decide_with(&ledger, &Approvals::new())
        };
        // Spend the whole budget.
        assert_eq!(pay(json!(5000)).effect, Effect::Allow);
        assert_eq!(pay(json!(5000)).effect, Effect::Allow);
        assert_eq!(codes(&pay(json!(1))), [ReasonCode::BudgetExceeded]);
        // None of these may pass uncharged, nor refund what was spent.
        let big: serde_json::Value = serde_json::from_str("18446744073709551615").unwrap();
        let float: serde_json::Value = serde_json::from_str("1e6").unwrap();
        for value in [
            json!("500000"),
            json!(500000.0),
            float,
            big,
            json!(-5000),
            json!(null),
            json!([1]),
        ] {
            let d = pay(value.clone());
            assert_eq!(d.effect, Effect::Deny, "{value}: {d:?}");
            // A grant's own constraint may name it too; every reason is one.
            assert!(
                codes(&d).iter().all(|c| *c == ReasonCode::ArgConstraint),
                "{value}: {d:?}"
            );
        }
        // The refused negative refunded nothing.
        assert_eq!(codes(&pay(json!(1))), [ReasonCode::BudgetExceeded]);
        // Zero is a non-negative integer and fits (where no `min` forbids it).
        if source == UNCONSTRAINED_BUDGET {
            assert_eq!(pay(json!(0)).effect, Effect::Allow);
        }
    }
}

#[test]
fn the_budget_names_the_line_that_refused_the_argument() {
    let a = agent(UNCONSTRAINED_BUDGET);
    let d = Req::new(&a, "pay").args(json!({"amount": "100"})).decide();
    assert_eq!(codes(&d), [ReasonCode::ArgConstraint]);
    let src = d.reasons[0].source.as_ref().unwrap();
    assert_eq!(src.path, "limits.budgets[0]");
    assert!(
        d.reasons[0].message.contains("non-negative integer"),
        "{d:?}"
    );
}

#[test]
fn a_request_without_the_budgeted_argument_is_not_counted() {
    let a = agent(UNCONSTRAINED_BUDGET);
    let ledger = MemoryLedger::new();
    let t0 = at(common::NOON);
    let go = |args: serde_json::Value| {
        Req::new(&a, "pay")
            .args(args)
            .now(t0)
            .decide_with(&ledger, &Approvals::new())
    };
    assert_eq!(go(json!({"amount": 10000})).effect, Effect::Allow);
    assert_eq!(go(json!({})).effect, Effect::Allow);
    assert_eq!(go(json!({"memo": "x"})).effect, Effect::Allow);
    assert_eq!(
        codes(&go(json!({"amount": 1}))),
        [ReasonCode::BudgetExceeded]
    );
}

#[test]
fn stored_usage_cannot_refund_or_overflow_a_budget() {
    let a = agent(UNCONSTRAINED_BUDGET);
    let t0 = at(common::NOON);
    let ms = |s: i64| secs(t0, s).as_millisecond();
    // A negative amount stored by an older version is not a refund.
    let ledger = MemoryLedger::new();
    ledger.replay("test-bot", ms(-3600), "amount", 10_000);
    ledger.replay("test-bot", ms(-1800), "amount", -10_000);
    let pay = |ledger: &MemoryLedger| {
        Req::new(&a, "pay")
            .args(json!({"amount": 1}))
            .now(t0)
            .decide_with(ledger, &Approvals::new())
    };
    assert_eq!(codes(&pay(&ledger)), [ReasonCode::BudgetExceeded]);
    // Sums saturate instead of overflowing.
    let ledger = MemoryLedger::new();
    ledger.replay("test-bot", ms(-60), "amount", i64::MAX);
    ledger.replay("test-bot", ms(-30), "amount", i64::MAX);
    assert_eq!(codes(&pay(&ledger)), [ReasonCode::BudgetExceeded]);
}
