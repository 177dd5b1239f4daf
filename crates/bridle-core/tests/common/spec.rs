//! Generated manifests and requests for the property tests over the change
//! classifier and least-privilege suggestions: a small vocabulary of tool
//! names, globs, forbids, data grants and argument constraints, rendered as
//! manifest YAML, and requests against it decided by the real engine.

use std::fmt::Write as _;

use bridle_core::Effect;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use crate::common::Req;

pub const NAMES: &[&str] = &["a.read", "a.write", "b.read", "a.*", "b.*", "*"];
pub const TOOLS: &[&str] = &["a.read", "a.write", "a.other", "b.read", "b.write", "c.run"];
pub const FORBIDS: &[&str] = &["a.write", "b.*", "c.*", "*.read"];
pub const RESOURCE_GLOBS: &[&str] = &["r:*", "r:1", "s:*"];
pub const RESOURCES: &[&str] = &["r:1", "r:2", "s:1"];
pub const ACCESS: &[&str] = &["read", "write", "export", "admin"];
pub const VENDORS: &[&str] = &["acme", "globex", "initech"];

#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub name: &'static str,
    pub access: &'static str,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub vendors: Option<Vec<&'static str>>,
    /// `None`: no approval; `Some(None)`: always; `Some(Some(k))`: when amount > k.
    pub approval: Option<Option<i64>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub grants: Vec<Grant>,
    pub forbid: Vec<&'static str>,
    pub data: Vec<(&'static str, Vec<&'static str>)>,
    pub budget: Option<i64>,
    /// Past its maximum, the budget asks `bob` for approval instead of
    /// denying.
    pub budget_asks: bool,
    pub elevation: Vec<&'static str>,
    pub expires: &'static str,
}

impl Spec {
    pub fn yaml(&self) -> String {
        let mut y = format!(
            "agent: gen-bot\nowner: alice\npurpose: Generated\nenvironment: dev\nexpires: {}\ntools:",
            self.expires
        );
        if self.grants.is_empty() {
            y.push_str(" []");
        }
        y.push('\n');
        for g in &self.grants {
            let _ = writeln!(y, "  - name: \"{}\"\n    access: {}", g.name, g.access);
            let has_args = g.min.is_some() || g.max.is_some() || g.vendors.is_some();
            if has_args {
                y.push_str("    args:\n");
            }
            if g.min.is_some() || g.max.is_some() {
                let mut parts = Vec::new();
                if let Some(n) = g.min {
                    parts.push(format!("min: {n}"));
                }
                if let Some(n) = g.max {
                    parts.push(format!("max: {n}"));
                }
                let _ = writeln!(y, "      amount: {{ {} }}", parts.join(", "));
            }
            if let Some(v) = &g.vendors {
                let _ = writeln!(y, "      vendor: {{ in: [{}] }}", v.join(", "));
            }
            match g.approval {
                None => {}
                Some(Some(k)) if g.min.is_some() || g.max.is_some() => {
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
        if let Some(max) = self.budget {
            let asks = if self.budget_asks {
                ", approval: { approvers: [bob] }"
            } else {
                ""
            };
            let _ = writeln!(
                y,
                "limits:\n  budgets:\n    - {{ arg: amount, max: {max}, per: 1h{asks} }}"
            );
        }
        if !self.elevation.is_empty() {
            let list: Vec<String> = self.elevation.iter().map(|f| format!("\"{f}\"")).collect();
            let _ = writeln!(
                y,
                "elevation:\n  - name: boost\n    tools: [{}]\n    max_duration: 1h\n    approvers: [bob]",
                list.join(", ")
            );
        }
        y
    }
}

pub fn grant_for(name: &'static str) -> impl Strategy<Value = Grant> {
    (
        select(ACCESS),
        proptest::option::of(0i64..6),
        proptest::option::of(5i64..20),
        proptest::option::of(subsequence(VENDORS, 1..=3)),
        proptest::option::weighted(0.4, proptest::option::of(0i64..20)),
    )
        .prop_map(move |(access, min, max, vendors, approval)| Grant {
            name,
            access,
            min,
            max,
            vendors,
            approval,
        })
}

pub fn grants() -> impl Strategy<Value = Vec<Grant>> {
    subsequence(NAMES, 0..=4)
        .prop_flat_map(|names| names.into_iter().map(grant_for).collect::<Vec<_>>())
}

pub fn data() -> impl Strategy<Value = Vec<(&'static str, Vec<&'static str>)>> {
    subsequence(RESOURCE_GLOBS, 0..=2).prop_flat_map(|globs| {
        globs
            .into_iter()
            .map(|g| subsequence(ACCESS, 1..=4).prop_map(move |a| (g, a)))
            .collect::<Vec<_>>()
    })
}

pub fn spec() -> impl Strategy<Value = Spec> {
    (
        grants(),
        prop_oneof![2 => Just(Vec::new()), 1 => subsequence(FORBIDS, 1..=2)],
        data(),
        proptest::option::weighted(0.3, 5i64..30),
        prop_oneof![3 => Just(Vec::new()), 1 => subsequence(NAMES, 1..=2)],
        select(&["2027-06-30", "2027-12-31"][..]),
        proptest::bool::weighted(0.3),
    )
        .prop_map(
            |(grants, forbid, data, budget, elevation, expires, budget_asks)| Spec {
                grants,
                forbid,
                data,
                budget,
                budget_asks,
                elevation,
                expires,
            },
        )
}

pub fn call_args() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        1 => Just(serde_json::json!({})),
        4 => (0i64..25, select(VENDORS)).prop_map(|(n, v)| serde_json::json!({ "amount": n, "vendor": v })),
        1 => (0i64..25).prop_map(|n| serde_json::json!({ "amount": n })),
        1 => Just(serde_json::json!({ "amount": "7", "vendor": "acme" })),
    ]
}

/// Requests tried against both versions of a generated pair.
pub fn requests()
-> impl Strategy<Value = Vec<(&'static str, serde_json::Value, Option<&'static str>, bool)>> {
    proptest::collection::vec(
        (
            select(TOOLS),
            call_args(),
            proptest::option::weighted(0.4, select(RESOURCES)),
            any::<bool>(),
        ),
        8,
    )
}

pub fn decide(
    agent: &bridle_core::CompiledAgent,
    action: &str,
    args: &serde_json::Value,
    resource: Option<&str>,
    elevated: bool,
) -> Effect {
    let mut req = Req::new(agent, action).args(args.clone());
    if let Some(r) = resource {
        req = req.resource(r);
    }
    if elevated && !agent.manifest().elevation.is_empty() {
        req = req.elevation("boost");
    }
    req.decide().effect
}
