//! Warnings: meaning-level mistakes reported with path and line, never
//! failing a load.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

mod common;

use bridle_core::manifest::{Approver, Warning, approver_warnings, warnings};
use common::{HEAD, examples_dir, parse};
use jiff::civil::date;

fn of(body: &str) -> Vec<Warning> {
    warnings(&parse(&format!("{HEAD}{body}")), date(2026, 6, 1))
}

fn paths(w: &[Warning]) -> Vec<&str> {
    w.iter().map(|w| w.path.as_str()).collect()
}

#[test]
fn a_budget_on_an_argument_no_grant_mentions() {
    let w = of(
        "tools:\n  - name: pay\n    args:\n      amount: { max: 10 }\nlimits:\n  budgets:\n    - { arg: total, max: 100, per: 1d }\n",
    );
    assert_eq!(paths(&w), ["limits.budgets[0].arg"], "{w:?}");
    assert_eq!(w[0].line, Some(12));
    assert!(w[0].message.contains("`total`"), "{}", w[0].message);
    // Mentioned by a condition (inferred) counts too.
    let w = of(
        "tools:\n  - name: pay\n    approval:\n      when: context.args.total > 5\n      approvers: [bob]\nlimits:\n  budgets:\n    - { arg: total, max: 100, per: 1d }\n",
    );
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn a_budget_that_asks_other_approvers_than_the_grant() {
    let m = |grant: &str, budget: &str| {
        of(&format!(
            "tools:\n  - name: pay\n    args:\n      amount: {{ max: 10000 }}\n    approval:\n      when: context.args.amount > 2000\n      approvers: [{grant}]\nlimits:\n  budgets:\n    - arg: amount\n      max: 5000\n      per: 24h\n      approval:\n        approvers: [{budget}]\n"
        ))
    };
    let w = m("bob", "group:finance");
    assert_eq!(paths(&w), ["limits.budgets[0].approval"], "{w:?}");
    assert_eq!(w[0].line, Some(19));
    assert!(
        w[0].message.contains("the grant's approvers decide"),
        "{}",
        w[0].message
    );
    // The same approvers: one approval is the same whichever rule asked.
    assert!(m("group:finance", "group:finance").is_empty());
}

#[test]
fn a_condition_on_a_likely_typo_of_an_argument() {
    let w = of(
        "tools:\n  - name: pay\n    args:\n      amount: { max: 1000 }\n    approval:\n      when: context.args.amout > 500\n      approvers: [bob]\n",
    );
    assert_eq!(paths(&w), ["tools[0]"], "{w:?}");
    assert!(
        w[0].message.contains("did you mean `amount`"),
        "{}",
        w[0].message
    );
}

#[test]
fn a_grant_that_a_forbid_hides_entirely() {
    let w = of(
        "tools:\n  - name: secrets.read\n  - name: \"secrets.*\"\n  - name: docs.read\nforbid: [\"secrets.*\"]\n",
    );
    assert_eq!(paths(&w), ["tools[0].name", "tools[1].name"], "{w:?}");
    assert_eq!(w[0].line, Some(7));
}

#[test]
fn write_tools_without_approval_or_budget() {
    let w = of(
        "tools:\n  - name: a\n    access: write\n  - name: b\n    access: admin\n    approval:\n      approvers: [bob]\n  - name: c\n    access: export\n    args:\n      n: { max: 3 }\n  - name: d\nlimits:\n  budgets:\n    - { arg: n, max: 10, per: 1h }\n",
    );
    assert_eq!(paths(&w), ["tools[0]"], "{w:?}");
    assert!(w[0].message.contains("`write` access"), "{}", w[0].message);
}

#[test]
fn overnight_windows_past_expiry_and_prod_without_review() {
    let src = "agent: w-bot\nowner: alice\npurpose: p\nenvironment: prod\nexpires: 2026-01-01\nschedule:\n  timezone: UTC\n  windows: [\"Mon-Fri 08:00-18:00\", \"Fri 22:00-06:00\"]\n";
    let w = warnings(&parse(src), date(2026, 6, 1));
    assert_eq!(
        paths(&w),
        ["schedule.windows[1]", "expires", "review_every"],
        "{w:?}"
    );
    assert!(w[0].message.contains("overnight"), "{}", w[0].message);
    // The day it expires is not past yet.
    let w = warnings(&parse(src), date(2026, 1, 1));
    assert!(!paths(&w).contains(&"expires"), "{w:?}");
}

#[test]
fn approvers_that_resolve_to_no_one() {
    let m = parse(&format!(
        "{HEAD}tools:\n  - name: pay\n    approval:\n      approvers: [finance, group:finance-approvers, bob]\nelevation:\n  - {{ name: up, tools: [x], max_duration: 1h, approvers: [group:nobody] }}\n"
    ));
    let known = |a: &Approver| matches!(a.to_string().as_str(), "bob" | "group:finance-approvers");
    let w = approver_warnings(&m, &known);
    assert_eq!(
        paths(&w),
        ["tools[0].approval.approvers", "elevation[0].approvers"],
        "{w:?}"
    );
    assert!(
        w[0].message.contains("`finance`") && w[0].message.contains("group:finance"),
        "{}",
        w[0].message
    );
    assert_eq!(w[0].line, Some(9));
}

#[test]
fn the_reference_agents_warn_only_about_unguarded_write_tools() {
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        let m = parse(&std::fs::read_to_string(&path).unwrap());
        for w in warnings(&m, date(2026, 6, 1)) {
            assert!(
                w.message.contains("neither an approval rule nor a budget"),
                "{}: {w}",
                path.display()
            );
        }
    }
}

#[test]
fn warnings_serialize_with_path_line_and_message() {
    let w = of("tools:\n  - name: a\n    access: write\n");
    assert_eq!(
        serde_json::to_value(&w).unwrap(),
        serde_json::json!([{"path": "tools[0]", "line": 7, "message": "`a` has `write` access with neither an approval rule nor a budget"}])
    );
}
