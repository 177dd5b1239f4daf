//! Properties of the decision engine over generated manifests and requests:
//! delegation never widens what either record allows, and a matching forbid
//! always wins.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

mod common;

use std::fmt::Write as _;

use bridle_core::{Effect, Guardrails, ReasonCode};
use common::{Req, compile, compile_with};
use proptest::prelude::*;
use proptest::sample::select;

const TOOLS: &[&str] = &["a.read", "a.write", "b.read", "b.write", "c.run"];
const GLOBS: &[&str] = &[
    "a.read", "a.write", "b.read", "b.write", "c.run", "a.*", "b.*", "*.read", "*.write", "*",
    "c.*",
];
const RESOURCES: &[&str] = &["r:1", "r:2", "s:1"];
const RESOURCE_GLOBS: &[&str] = &["r:*", "r:1", "s:*", "*"];
const ACCESS: &[&str] = &["read", "write", "export", "admin"];

#[derive(Debug, Clone)]
struct Grant {
    name: &'static str,
    access: &'static str,
    max: Option<i64>,
    /// `None`: no approval; `Some(None)`: always; `Some(Some(k))`: when amount > k.
    approval: Option<Option<i64>>,
}

#[derive(Debug, Clone)]
struct Spec {
    grants: Vec<Grant>,
    forbid: Vec<String>,
    data: Vec<(&'static str, Vec<&'static str>)>,
    elevation: Vec<&'static str>,
    elevation_active: bool,
}

impl Spec {
    fn yaml(&self, id: &str) -> String {
        let mut y = format!(
            "agent: {id}\nowner: alice\npurpose: Generated\nenvironment: dev\nexpires: 2027-12-31\ntools:"
        );
        if self.grants.is_empty() {
            y.push_str(" []");
        }
        y.push('\n');
        for g in keep_governable(&self.grants, |g| g.name) {
            let _ = writeln!(y, "  - name: \"{}\"\n    access: {}", g.name, g.access);
            if let Some(max) = g.max {
                let _ = writeln!(y, "    args:\n      amount: {{ max: {max} }}");
            }
            match g.approval {
                None => {}
                // `when` may only use arguments that have a constraint.
                Some(Some(k)) if g.max.is_some() => {
                    let _ = writeln!(
                        y,
                        "    approval:\n      when: context.args.amount > {k}\n      approvers: [bob]"
                    );
                }
                Some(_) => y.push_str("    approval:\n      approvers: [bob]\n"),
            }
        }
        if !self.forbid.is_empty() {
            let list: Vec<String> = self.forbid.iter().map(|f| format!("\"{f}\"")).collect();
            let _ = writeln!(y, "forbid: [{}]", list.join(", "));
        }
        if !self.data.is_empty() {
            y.push_str("data:\n");
            for (r, access) in &self.data {
                let _ = writeln!(
                    y,
                    "  - {{ resource: \"{r}\", access: [{}] }}",
                    access.join(", ")
                );
            }
        }
        if !self.elevation.is_empty() {
            let list: Vec<String> = keep_governable(&self.elevation, |f| f)
                .iter()
                .map(|f| format!("\"{f}\""))
                .collect();
            let _ = writeln!(
                y,
                "elevation:\n  - name: boost\n    tools: [{}]\n    max_duration: 1h\n    approvers: [bob]",
                list.join(", ")
            );
        }
        y
    }
}

/// The items whose names a manifest accepts together: each one that is as
/// specific as an earlier one and shares a name with it is dropped (the
/// most specific grant governs, so such a pair is refused at load).
fn keep_governable<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<&T> {
    use bridle_core::glob::Glob;
    let mut kept: Vec<(&T, Glob)> = Vec::new();
    for item in items {
        let g = Glob::tool(name(item)).unwrap();
        if !kept
            .iter()
            .any(|(_, k)| k.specificity() == g.specificity() && k.overlaps(&g))
        {
            kept.push((item, g));
        }
    }
    kept.into_iter().map(|(i, _)| i).collect()
}

fn grant() -> impl Strategy<Value = Grant> {
    (
        select(GLOBS),
        select(ACCESS),
        proptest::option::of(0i64..20),
        proptest::option::weighted(0.3, proptest::option::of(0i64..20)),
    )
        .prop_map(|(name, access, max, approval)| Grant {
            name,
            access,
            max,
            approval,
        })
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        proptest::collection::vec(grant(), 0..5),
        // Mostly no forbid, sometimes one or two: enough allowed requests
        // remain for the properties to say something.
        prop_oneof![
            3 => Just(Vec::new()),
            2 => proptest::collection::vec(select(GLOBS).prop_map(str::to_owned), 1..3),
        ],
        proptest::collection::vec(
            (
                select(RESOURCE_GLOBS),
                proptest::sample::subsequence(ACCESS, 1..=4),
            ),
            0..3,
        ),
        proptest::collection::vec(select(GLOBS), 0..3),
        any::<bool>(),
    )
        .prop_map(|(grants, forbid, data, elevation, elevation_active)| Spec {
            grants,
            forbid,
            data,
            elevation,
            elevation_active,
        })
}

impl Spec {
    /// This spec with `other`'s grants, forbids, data and elevation tools
    /// added (and `other`'s elevation state).
    fn plus(&self, other: &Spec) -> Spec {
        let cat = |a: &[&'static str], b: &[&'static str]| [a, b].concat();
        Spec {
            grants: [self.grants.clone(), other.grants.clone()].concat(),
            forbid: [self.forbid.clone(), other.forbid.clone()].concat(),
            data: [self.data.clone(), other.data.clone()].concat(),
            elevation: cat(&self.elevation, &other.elevation),
            elevation_active: other.elevation_active,
        }
    }
}

/// A delegator and a delegate that share part of their records (as real
/// pairs do), so that both allow the same action often enough.
fn pair() -> impl Strategy<Value = (Spec, Spec)> {
    (
        proptest::collection::vec(grant(), 0..4),
        proptest::collection::vec(
            (
                select(RESOURCE_GLOBS),
                proptest::sample::subsequence(ACCESS, 1..=4),
            ),
            0..2,
        ),
        spec(),
        spec(),
    )
        .prop_map(|(grants, data, d, e)| {
            let shared = Spec {
                grants,
                forbid: Vec::new(),
                data,
                elevation: Vec::new(),
                elevation_active: false,
            };
            (shared.plus(&d), shared.plus(&e))
        })
}

/// The action's arguments: `amount` missing, an integer, or a string.
fn call_args() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        1 => Just(serde_json::json!({})),
        3 => (0i64..25).prop_map(|n| serde_json::json!({ "amount": n })),
        1 => Just(serde_json::json!({ "amount": "7" })),
    ]
}

fn with_elevation<'a>(req: Req<'a>, spec: &Spec) -> Req<'a> {
    if spec.elevation_active && !spec.elevation.is_empty() {
        req.elevation("boost")
    } else {
        req
    }
}

/// Cases per delegation property, and the fewest of them that must end in
/// `allow`: a property checked only on denials would hold vacuously. (About
/// 40 and 20 of 256 are allowed in practice; 8 leaves room for chance.)
const DELEGATION_CASES: u32 = 256;
const MIN_ALLOWED: usize = 8;

/// Runs `check` on `DELEGATION_CASES` generated cases; `check` returns
/// whether the delegated decision was allowed. Fails on a counterexample
/// and when fewer than `MIN_ALLOWED` cases were allowed.
fn run_with_allows<S: Strategy>(
    strategy: S,
    check: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) {
    let allowed = std::cell::Cell::new(0usize);
    let mut runner =
        proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(DELEGATION_CASES));
    let result = runner.run(&strategy, |value| {
        if check(value)? {
            allowed.set(allowed.get() + 1);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        allowed.get() >= MIN_ALLOWED,
        "only {} of {DELEGATION_CASES} generated delegations were allowed: the property proves little",
        allowed.get()
    );
}

fn with_call<'a>(req: Req<'a>, args: &serde_json::Value, resource: Option<&str>) -> Req<'a> {
    let req = req.args(args.clone());
    match resource {
        Some(r) => req.resource(r),
        None => req,
    }
}

/// A delegated decision is `allow` exactly when each record alone allows:
/// in particular never when the delegator alone, or the delegate alone, is
/// not allowed. Enough generated chains are allowed for this to mean
/// something.
#[test]
fn delegation_allows_only_what_both_records_allow() {
    let cases = (
        pair(),
        select(TOOLS),
        call_args(),
        proptest::option::weighted(0.4, select(RESOURCES)),
    );
    run_with_allows(cases, |((delegator, delegate), action, args, resource)| {
        let d_agent = compile(&delegator.yaml("delegator"));
        let e_agent = compile(&delegate.yaml("delegate"));
        let alone_d = with_call(
            with_elevation(Req::new(&d_agent, action), &delegator),
            &args,
            resource,
        )
        .decide();
        let alone_e = with_call(
            with_elevation(Req::new(&e_agent, action), &delegate),
            &args,
            resource,
        )
        .decide();
        let chain = with_call(
            with_elevation(
                with_elevation(Req::new(&d_agent, action), &delegator).delegate(&e_agent),
                &delegate,
            ),
            &args,
            resource,
        )
        .decide();

        if chain.effect == Effect::Allow {
            prop_assert_eq!(
                alone_d.effect,
                Effect::Allow,
                "delegator alone: {:?}",
                alone_d
            );
            prop_assert_eq!(
                alone_e.effect,
                Effect::Allow,
                "delegate alone: {:?}",
                alone_e
            );
        }
        if alone_d.effect == Effect::Allow && alone_e.effect == Effect::Allow {
            prop_assert_eq!(chain.effect, Effect::Allow, "chain: {:?}", chain);
        }
        // A denial by either record is the chain's denial.
        if alone_d.effect == Effect::Deny || alone_e.effect == Effect::Deny {
            prop_assert_eq!(chain.effect, Effect::Deny, "chain: {:?}", chain);
        }
        Ok(chain.effect == Effect::Allow)
    });
}

/// Chains of two to four agents, optionally narrowed by a token scope: the
/// delegated decision is `allow` only where every agent of the chain alone
/// is allowed and the action is inside the scope; and such allows happen.
#[test]
fn a_delegation_chain_never_widens() {
    let cases = (
        pair(),
        proptest::collection::vec(spec(), 0..3),
        select(TOOLS),
        call_args(),
        proptest::option::weighted(0.4, select(RESOURCES)),
        proptest::option::weighted(0.5, proptest::collection::vec(select(GLOBS), 1..3)),
    );
    run_with_allows(
        cases,
        |((first, second), more, action, args, resource, scope)| {
            // Each later agent shares the first's records, as real chains do.
            let specs: Vec<Spec> = [first.clone(), second]
                .into_iter()
                .chain(more.iter().map(|m| first.plus(m)))
                .collect();
            let agents: Vec<_> = specs
                .iter()
                .enumerate()
                .map(|(i, s)| compile(&s.yaml(&format!("agent-{i}"))))
                .collect();
            let mut chain = with_elevation(Req::new(&agents[0], action), &specs[0]);
            for (agent, spec) in agents.iter().zip(&specs).skip(1) {
                chain = with_elevation(chain.delegate(agent), spec);
            }
            if let Some(scope) = &scope {
                chain = chain.scope(scope);
            }
            let chain = with_call(chain, &args, resource).decide();
            if chain.effect == Effect::Allow {
                for (agent, spec) in agents.iter().zip(&specs) {
                    let alone = with_call(
                        with_elevation(Req::new(agent, action), spec),
                        &args,
                        resource,
                    )
                    .decide();
                    prop_assert_eq!(
                        alone.effect,
                        Effect::Allow,
                        "{} alone: {:?}",
                        agent.manifest().agent,
                        alone
                    );
                }
                if let Some(scope) = &scope {
                    prop_assert!(
                        scope
                            .iter()
                            .any(|g| bridle_core::glob::Glob::tool(g).unwrap().matches(action)),
                        "allowed outside the scope {:?}",
                        scope
                    );
                }
            }
            Ok(chain.effect == Effect::Allow)
        },
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A forbid glob that matches the action denies it with `forbidden`,
    /// whatever is granted, elevated, asked or touched.
    #[test]
    fn a_matching_forbid_always_wins(
        mut spec in spec(),
        action in select(TOOLS),
        shape in 0usize..4,
        via_guardrail in any::<bool>(),
        args in call_args(),
        resource in proptest::option::of(select(RESOURCES)),
    ) {
        let (head, tail) = action.split_once('.').unwrap();
        let glob = match shape {
            0 => action.to_owned(),
            1 => format!("{head}.*"),
            2 => "*".to_owned(),
            _ => format!("*.{tail}"),
        };
        // Everything granted outright, and through an active elevation.
        spec.grants.push(Grant { name: "*", access: "read", max: None, approval: None });
        spec.elevation.push("*");
        spec.elevation_active = true;
        let agent = if via_guardrail {
            let mut g = Guardrails::new();
            g.add(
                "org",
                &format!("forbid (principal, action, resource) when {{ context.tool like \"{glob}\" }};"),
            )
            .unwrap();
            compile_with(&spec.yaml("forbidden-bot"), &g)
        } else {
            spec.forbid.push(glob);
            compile(&spec.yaml("forbidden-bot"))
        };
        let mut req = Req::new(&agent, action).args(args).elevation("boost");
        if let Some(r) = resource {
            req = req.resource(r);
        }
        let d = req.decide();
        prop_assert_eq!(d.effect, Effect::Deny, "{:?}", d);
        prop_assert!(
            d.reasons.iter().all(|r| r.code == ReasonCode::Forbidden),
            "{:?}",
            d
        );
        prop_assert!(!d.reasons.is_empty());
    }
}
