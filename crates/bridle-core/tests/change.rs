//! The change classifier: what each kind of edit to a manifest is, and
//! properties over generated manifests and edits (identity changes nothing;
//! a change and its inverse never both narrow; applying only narrowings
//! never lets through a request that was not allowed before).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

mod common;
#[path = "common/spec.rs"]
mod spec;

use bridle_core::Effect;
use bridle_core::change::{Change, ChangeEffect, classify, is_widening};
use common::{compile, examples_dir, parse};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use spec::*;

fn procurement() -> String {
    std::fs::read_to_string(examples_dir().join("procurement-bot.yaml")).unwrap()
}

fn changes(old: &str, new: &str) -> Vec<Change> {
    classify(Some(&parse(old)), &parse(new))
}

fn effect_at(changes: &[Change], path: &str) -> ChangeEffect {
    changes
        .iter()
        .find(|c| c.path == path)
        .unwrap_or_else(|| panic!("no change at `{path}` in {changes:#?}"))
        .effect
}

#[test]
fn the_same_manifest_changes_nothing() {
    let src = procurement();
    assert_eq!(changes(&src, &src), Vec::new());
    // Reordering keys and grants is not a change either.
    let reordered = src.replace(
        "  - name: procurement.list_vendors\n  - name: procurement.create_purchase_request",
        "  - name: procurement.create_purchase_request",
    ) + "";
    let reordered = reordered.replace(
        "forbid: [procurement.approve_*]",
        "  - name: procurement.list_vendors\nforbid: [procurement.approve_*]",
    );
    assert_eq!(changes(&src, &reordered), Vec::new());
}

#[test]
fn raising_the_approval_threshold_is_widening() {
    let src = procurement();
    let raised = src.replace("amount > 5000", "amount > 100000");
    let c = changes(&src, &raised);
    assert_eq!(
        effect_at(
            &c,
            "tools[procurement.create_purchase_request].approval.when"
        ),
        ChangeEffect::Widening
    );
    assert!(is_widening(&c));
    // The way back is not provably narrower either (another expression).
    assert!(is_widening(&changes(&raised, &src)));
}

#[test]
fn caps_lists_and_limits_are_ordered() {
    let src = procurement();
    let cases = [
        (
            "amount: { min: 1, max: 100000 }",
            "amount: { min: 1, max: 50000 }",
            "tools[procurement.create_purchase_request].args.amount.max",
        ),
        (
            "amount: { min: 1, max: 100000 }",
            "amount: { min: 10, max: 100000 }",
            "tools[procurement.create_purchase_request].args.amount.min",
        ),
        (
            "vendor: { in: [acme, globex, initech] }",
            "vendor: { in: [acme, globex] }",
            "tools[procurement.create_purchase_request].args.vendor.in",
        ),
        (
            "max: 50000, per: 24h",
            "max: 40000, per: 24h",
            "limits.budgets[amount/1d].max",
        ),
        ("rate: 120/min", "rate: 60/min", "limits.rate"),
        ("expires: 2027-12-31", "expires: 2027-06-30", "expires"),
        (
            "ttl: 24h",
            "ttl: 1h",
            "tools[procurement.create_purchase_request].approval.ttl",
        ),
        ("review_every: 90d", "review_every: 30d", "review_every"),
    ];
    for (from, to, path) in cases {
        let narrower = src.replace(from, to);
        assert_ne!(narrower, src, "{from} is in the example");
        let c = changes(&src, &narrower);
        assert_eq!(
            effect_at(&c, path),
            ChangeEffect::Narrowing,
            "{from} → {to}"
        );
        assert!(!is_widening(&c), "{c:#?}");
        let back = changes(&narrower, &src);
        assert_eq!(
            effect_at(&back, path),
            ChangeEffect::Widening,
            "{to} → {from}"
        );
    }
}

#[test]
fn what_api_md_lists_as_widening_is_widening() {
    let src = procurement();
    let cases = [
        // a new tool
        (
            "  - name: procurement.list_vendors\n",
            "  - name: procurement.list_vendors\n  - name: procurement.delete_vendor\n",
            "tools[procurement.delete_vendor]",
        ),
        // a removed constraint
        (
            "      vendor: { in: [acme, globex, initech] }\n",
            "",
            "tools[procurement.create_purchase_request].args.vendor.in",
        ),
        // a removed forbid
        (
            "forbid: [procurement.approve_*]\n",
            "",
            "forbid[procurement.approve_*]",
        ),
        // a removed approval rule
        (
            "    approval:\n      when: context.args.amount > 5000\n      approvers: [group:finance-approvers]\n      ttl: 24h\n",
            "",
            "tools[procurement.create_purchase_request].approval",
        ),
        // a removed limit
        ("  rate: 120/min\n", "", "limits.rate"),
        // a removed budget
        (
            "  budgets:\n    - { arg: amount, max: 50000, per: 24h }\n",
            "",
            "limits.budgets[amount/1d]",
        ),
        // a new owner
        ("owner: alice", "owner: mallory", "owner"),
        // a later expiry
        ("expires: 2027-12-31", "expires: 2030-12-31", "expires"),
        // more approvers
        (
            "approvers: [group:finance-approvers]",
            "approvers: [group:finance-approvers, mallory]",
            "tools[procurement.create_purchase_request].approval.approvers",
        ),
        // the owner may approve
        (
            "      ttl: 24h\n",
            "      ttl: 24h\n      allow_owner: true\n",
            "tools[procurement.create_purchase_request].approval.allow_owner",
        ),
        // a longer token
        (
            "    - { arg: amount, max: 50000, per: 24h }\n",
            "    - { arg: amount, max: 50000, per: 24h }\ncredentials: { token_ttl: 1h }\n",
            "credentials.token_ttl",
        ),
        // a glob next to a constrained literal
        (
            "  - name: procurement.list_vendors\n",
            "  - name: procurement.list_vendors\n  - name: \"procurement.*\"\n",
            "tools[procurement.*]",
        ),
        // a new data grant
        (
            "forbid:",
            "data:\n  - { resource: \"erp:*\", access: [read, export] }\nforbid:",
            "data[erp:*]",
        ),
        // a new delegate
        (
            "forbid:",
            "delegation: { to: [helper-bot], max_depth: 2 }\nforbid:",
            "delegation.to[helper-bot]",
        ),
    ];
    for (from, to, path) in cases {
        let wider = src.replacen(from, to, 1);
        assert_ne!(wider, src, "`{from}` is in the example");
        let c = changes(&src, &wider);
        assert_eq!(
            effect_at(&c, path),
            ChangeEffect::Widening,
            "{from:?} → {to:?}: {c:#?}"
        );
    }
}

#[test]
fn removing_a_grant_that_another_grant_overlaps_is_widening() {
    let body = |tools: &str| {
        format!(
            "agent: inv-bot\nowner: alice\npurpose: Pay invoices\nenvironment: prod\nexpires: 2027-12-31\ntools:\n{tools}"
        )
    };
    let both = body(
        "  - name: \"invoices.*\"\n  - name: invoices.pay_invoice\n    access: write\n    args:\n      amount: { max: 1000 }\n",
    );
    let glob_only = body("  - name: \"invoices.*\"\n");
    let c = changes(&both, &glob_only);
    assert_eq!(
        effect_at(&c, "tools[invoices.pay_invoice]"),
        ChangeEffect::Widening
    );
    // With nothing left that matches, a removal narrows.
    let other = body("  - name: crm.get_case\n");
    let c = changes(&glob_only, &other);
    assert_eq!(effect_at(&c, "tools[invoices.*]"), ChangeEffect::Narrowing);
}

#[test]
fn descriptive_fields_are_neutral() {
    let src = procurement();
    let renamed = src
        .replace("name: Procurement assistant", "name: Buyer")
        .replace("team: finance-ops", "team: finance")
        .replace(
            "purpose: Draft purchase requests for approved vendors",
            "purpose: Draft purchase requests",
        )
        .replace("# A procurement agent", "# The procurement agent");
    let c = changes(&src, &renamed);
    assert_eq!(c.len(), 3, "{c:#?}");
    assert!(
        c.iter().all(|c| c.effect == ChangeEffect::Neutral),
        "{c:#?}"
    );
}

#[test]
fn a_new_agent_is_one_widening_change_per_grant() {
    let m = parse(&procurement());
    let c = classify(None, &m);
    let paths: Vec<&str> = c.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "agent",
            "tools[procurement.list_vendors]",
            "tools[procurement.create_purchase_request]"
        ]
    );
    assert!(c.iter().all(|c| c.effect == ChangeEffect::Widening));
}

#[test]
fn a_budget_that_asks_past_its_maximum_is_wider_than_one_that_denies() {
    let src = procurement();
    let hard = "    - { arg: amount, max: 50000, per: 24h }\n";
    assert!(src.contains(hard));
    let asks = |approvers: &str, min: u32| {
        src.replace(
            hard,
            &format!(
                "    - {{ arg: amount, max: 50000, per: 24h, approval: {{ approvers: [{approvers}], min_approvals: {min} }} }}\n"
            ),
        )
    };
    let path = "limits.budgets[amount/1d].approval";
    // Denied past the maximum before; approvable after: wider.
    let c = changes(&src, &asks("group:finance-approvers", 1));
    assert_eq!(effect_at(&c, path), ChangeEffect::Widening, "{c:#?}");
    assert!(is_widening(&c));
    // And back: narrower.
    let c = changes(&asks("group:finance-approvers", 1), &src);
    assert_eq!(effect_at(&c, path), ChangeEffect::Narrowing, "{c:#?}");
    assert!(!is_widening(&c));
    // The budget's rule is compared as a grant's is.
    let c = changes(
        &asks("group:finance-approvers", 1),
        &asks("group:finance-approvers", 2),
    );
    assert_eq!(
        effect_at(&c, &format!("{path}.min_approvals")),
        ChangeEffect::Narrowing
    );
    let c = changes(
        &asks("group:finance-approvers", 1),
        &asks("group:finance-approvers, mallory", 1),
    );
    assert_eq!(
        effect_at(&c, &format!("{path}.approvers")),
        ChangeEffect::Widening
    );
}

#[test]
fn changes_serialize_with_lowercase_effects() {
    let src = procurement();
    let c = changes(&src, &src.replace("owner: alice", "owner: bob"));
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        serde_json::json!([{"path": "owner", "effect": "widening", "detail": "new owner: `alice` → `bob`"}])
    );
}

// --- properties over generated manifests -----------------------------------

/// Grant names with no two of equal specificity matching one name.
/// One edit to a spec: some widen, some narrow, some do both.
#[derive(Debug, Clone)]
enum Edit {
    RemoveGrant(usize),
    AddGrant(Grant),
    /// A glob grant replaced by copies named by the literal names within it
    /// (what a least-privilege suggestion does).
    Split(usize),
    Max(usize, Option<i64>),
    Min(usize, Option<i64>),
    Vendors(usize, Option<Vec<&'static str>>),
    Approval(usize, Option<Option<i64>>),
    Access(usize, &'static str),
    AddForbid(&'static str),
    RemoveForbid(usize),
    RemoveData(usize),
    DataAccess(usize, Vec<&'static str>),
    Budget(Option<i64>),
    BudgetAsks(bool),
    Elevation(Vec<&'static str>),
    Expires(&'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    let i = 0usize..4;
    // Weighted towards the edits whose direction is easiest to get wrong.
    prop_oneof![
        2 => i.clone().prop_map(Edit::RemoveGrant),
        1 => select(NAMES).prop_flat_map(grant_for).prop_map(Edit::AddGrant),
        2 => i.clone().prop_map(Edit::Split),
        4 => (i.clone(), proptest::option::weighted(0.9, 5i64..20))
            .prop_map(|(i, v)| Edit::Max(i, v)),
        3 => (i.clone(), proptest::option::weighted(0.9, 0i64..6))
            .prop_map(|(i, v)| Edit::Min(i, v)),
        3 => (i.clone(), proptest::option::weighted(0.9, subsequence(VENDORS, 1..=3)))
            .prop_map(|(i, v)| Edit::Vendors(i, v)),
        3 => (i.clone(), proptest::option::of(proptest::option::of(0i64..20)))
            .prop_map(|(i, v)| Edit::Approval(i, v)),
        1 => (i.clone(), select(ACCESS)).prop_map(|(i, a)| Edit::Access(i, a)),
        2 => select(FORBIDS).prop_map(Edit::AddForbid),
        1 => (0usize..2).prop_map(Edit::RemoveForbid),
        2 => (0usize..2).prop_map(Edit::RemoveData),
        2 => ((0usize..2), subsequence(ACCESS, 1..=4)).prop_map(|(i, a)| Edit::DataAccess(i, a)),
        2 => proptest::option::of(5i64..30).prop_map(Edit::Budget),
        2 => proptest::bool::ANY.prop_map(Edit::BudgetAsks),
        1 => prop_oneof![Just(Vec::new()), subsequence(NAMES, 1..=2)].prop_map(Edit::Elevation),
        1 => select(&["2027-06-30", "2027-12-31"][..]).prop_map(Edit::Expires),
    ]
}

impl Spec {
    fn apply(&self, edits: &[Edit]) -> Spec {
        let mut s = self.clone();
        for e in edits {
            let n = s.grants.len();
            let g = |i: &usize| if n == 0 { None } else { Some(i % n) };
            match e {
                Edit::RemoveGrant(i) => {
                    if let Some(i) = g(i) {
                        s.grants.remove(i);
                    }
                }
                Edit::AddGrant(new) => {
                    if !s.grants.iter().any(|x| x.name == new.name) {
                        s.grants.push(new.clone());
                    }
                }
                Edit::Split(i) => {
                    if let Some(i) = g(i)
                        && s.grants[i].name.contains('*')
                    {
                        let glob = bridle_core::glob::Glob::tool(s.grants[i].name).unwrap();
                        let old = s.grants.remove(i);
                        for name in NAMES.iter().filter(|n| !n.contains('*') && glob.matches(n)) {
                            if !s.grants.iter().any(|x| x.name == *name) {
                                s.grants.push(Grant {
                                    name,
                                    ..old.clone()
                                });
                            }
                        }
                    }
                }
                Edit::Max(i, v) => g(i).into_iter().for_each(|i| s.grants[i].max = *v),
                Edit::Min(i, v) => g(i).into_iter().for_each(|i| s.grants[i].min = *v),
                Edit::Vendors(i, v) => {
                    g(i).into_iter()
                        .for_each(|i| s.grants[i].vendors.clone_from(v));
                }
                Edit::Approval(i, v) => g(i).into_iter().for_each(|i| s.grants[i].approval = *v),
                Edit::Access(i, a) => g(i).into_iter().for_each(|i| s.grants[i].access = a),
                Edit::AddForbid(f) => {
                    if !s.forbid.contains(f) {
                        s.forbid.push(f);
                    }
                }
                Edit::RemoveForbid(i) => {
                    if !s.forbid.is_empty() {
                        let i = i % s.forbid.len();
                        s.forbid.remove(i);
                    }
                }
                Edit::RemoveData(i) => {
                    if !s.data.is_empty() {
                        let i = i % s.data.len();
                        s.data.remove(i);
                    }
                }
                Edit::DataAccess(i, a) => {
                    if !s.data.is_empty() {
                        let i = i % s.data.len();
                        s.data[i].1.clone_from(a);
                    }
                }
                Edit::Budget(b) => s.budget = *b,
                Edit::BudgetAsks(a) => s.budget_asks = *a,
                Edit::Elevation(e) => s.elevation.clone_from(e),
                Edit::Expires(d) => s.expires = d,
            }
        }
        s
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A manifest against itself: no change at all.
    #[test]
    fn identity_changes_nothing(s in spec()) {
        let m = parse(&s.yaml());
        prop_assert_eq!(classify(Some(&m), &m), Vec::new());
    }

    /// If an edit only narrows (or is neutral), its inverse widens.
    #[test]
    fn a_change_and_its_inverse_never_both_narrow(
        s in spec(),
        edits in proptest::collection::vec(edit(), 1..3),
    ) {
        let a = parse(&s.yaml());
        let b = parse(&s.apply(&edits).yaml());
        let forth = classify(Some(&a), &b);
        let back = classify(Some(&b), &a);
        let narrows = |c: &[Change]| c.iter().any(|c| c.effect == ChangeEffect::Narrowing);
        prop_assert!(
            !(narrows(&forth) && !is_widening(&forth) && !is_widening(&back)),
            "both directions narrow:\n{forth:#?}\n{back:#?}"
        );
        prop_assert!(
            !(narrows(&back) && !is_widening(&back) && !is_widening(&forth)),
            "both directions narrow:\n{forth:#?}\n{back:#?}"
        );
    }
}

/// Applying only narrowing (and neutral) changes never allows a request the
/// version in force did not allow, decided by the real engine on both
/// versions. Enough generated edits are narrowing-only, and enough requests
/// were allowed before, for this to say something.
#[test]
fn only_narrowings_never_allow_what_was_not_allowed() {
    const CASES: u32 = 512;
    let narrowing_pairs = std::cell::Cell::new(0usize);
    let allowed_before = std::cell::Cell::new(0usize);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(CASES));
    let strategy = (spec(), proptest::collection::vec(edit(), 1..3), requests());
    let result = runner.run(&strategy, |(s, edits, requests)| {
        let after = s.apply(&edits);
        let a = compile(&s.yaml());
        let b = compile(&after.yaml());
        let changes = classify(Some(a.manifest()), b.manifest());
        if is_widening(&changes) {
            return Ok(());
        }
        narrowing_pairs.set(narrowing_pairs.get() + 1);
        for (action, args, resource, elevated) in &requests {
            let before = decide(&a, action, args, *resource, *elevated);
            let now = decide(&b, action, args, *resource, *elevated);
            if before == Effect::Allow {
                allowed_before.set(allowed_before.get() + 1);
            }
            if before != Effect::Allow {
                prop_assert_ne!(
                    now,
                    Effect::Allow,
                    "`{}` {} was {:?} and is allowed after {:#?}\n--- before\n{}--- after\n{}",
                    action,
                    args,
                    before,
                    changes,
                    s.yaml(),
                    after.yaml()
                );
            }
            if before == Effect::Deny {
                prop_assert_eq!(
                    now,
                    Effect::Deny,
                    "`{}` {} after {:#?}",
                    action,
                    args,
                    changes
                );
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        narrowing_pairs.get() >= 40 && allowed_before.get() >= 40,
        "{} narrowing-only pairs, {} allowed requests before: the property proves little",
        narrowing_pairs.get(),
        allowed_before.get()
    );
}

#[test]
fn a_glob_split_into_the_names_used_is_not_widening() {
    let glob = |tools: &str| {
        format!(
            "agent: split-bot\nowner: alice\npurpose: t\nenvironment: dev\nexpires: 2027-12-31\ntools:\n{tools}"
        )
    };
    let before = glob("  - name: repo.*\n    args:\n      n: { max: 10 }\n");
    // The same constraints on the names used: what was allowed for them
    // stays allowed, the rest is gone.
    let after = glob(
        "  - name: repo.read\n    args:\n      n: { max: 10 }\n  - name: repo.list\n    args:\n      n: { max: 5 }\n",
    );
    let c = changes(&before, &after);
    assert!(!is_widening(&c), "{c:#?}");
    assert_eq!(effect_at(&c, "tools[repo.*]"), ChangeEffect::Narrowing);
    assert_eq!(effect_at(&c, "tools[repo.read]"), ChangeEffect::Neutral);
    assert_eq!(effect_at(&c, "tools[repo.list]"), ChangeEffect::Narrowing);
    // A split-out name looser than the glob it came from widens.
    let looser = glob("  - name: repo.read\n    args:\n      n: { max: 50 }\n");
    let c = changes(&before, &looser);
    assert!(is_widening(&c), "{c:#?}");
    // A name no grant governed before is new authority.
    let other = glob("  - name: repo.*\n    args:\n      n: { max: 10 }\n  - name: ci.run\n");
    assert!(is_widening(&changes(&before, &other)));
    // A literal taking over from a stricter, more specific grant widens.
    let specific = glob(
        "  - name: repo.*\n    args:\n      n: { max: 10 }\n  - name: repo.re*\n    args:\n      n: { max: 2 }\n",
    );
    let takeover = glob(
        "  - name: repo.*\n    args:\n      n: { max: 10 }\n  - name: repo.re*\n    args:\n      n: { max: 2 }\n  - name: repo.read\n    args:\n      n: { max: 10 }\n",
    );
    assert!(is_widening(&changes(&specific, &takeover)));
}
