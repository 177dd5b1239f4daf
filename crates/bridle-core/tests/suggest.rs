//! Least privilege from evidence: a suggestion made from what an agent was
//! allowed to do keeps allowing exactly that, never allows what the version
//! in force denies, and is never classified as widening.
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
use bridle_core::activity::{ActionActivity, observe, report};
use bridle_core::audit::{EventBody, EventType};
use bridle_core::change::is_widening;
use bridle_core::manifest::suggest::suggest;
use common::{compile, examples_dir};
use proptest::prelude::*;
use spec::{decide, requests, spec};

/// The activity of allowed requests, as the audit writer would tally it.
fn activity(agent: &str, allowed: &[(&str, serde_json::Value)]) -> Vec<ActionActivity> {
    allowed
        .iter()
        .filter_map(|(action, args)| {
            let mut e = EventBody::new(EventType::Decision, jiff::Timestamp::now(), "agent:x");
            e.agent = Some(agent.into());
            e.action = Some((*action).into());
            e.decision = Some(Effect::Allow);
            e.reasons = Some(Vec::new());
            e.args = Some(args.clone());
            let (key, t) = observe(&e)?;
            Some(ActionActivity {
                action: key.action,
                effect: key.effect,
                reason: key.reason,
                uses: t.uses,
                last_at: t.last_at,
                args: t.args,
            })
        })
        .collect()
}

#[test]
fn the_procurement_agent_is_narrowed_to_its_use() {
    let source = std::fs::read_to_string(examples_dir().join("procurement-bot.yaml")).unwrap();
    let current = compile(&source);
    let used = [
        (
            "procurement.create_purchase_request",
            serde_json::json!({"vendor": "acme", "amount": 500}),
        ),
        (
            "procurement.create_purchase_request",
            serde_json::json!({"vendor": "globex", "amount": 1200}),
        ),
    ];
    let r = report(current.manifest(), &activity("procurement-bot", &used));
    let s = suggest(&source, &r, "30d").unwrap();
    assert!(!is_widening(&s.changes), "{:#?}", s.changes);
    let paths: Vec<&str> = s.evidence.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "tools[1].args.amount.min",
            "tools[1].args.amount.max",
            "tools[1].args.vendor.in",
            "tools[0]"
        ],
        "{:#?}",
        s.evidence
    );
    let narrowed = compile(&s.manifest);
    let m = narrowed.manifest();
    assert_eq!(
        m.tools.len(),
        1,
        "the unused vendor listing is gone:\n{}",
        s.manifest
    );
    assert!(s.manifest.contains("max: 1320"), "{}", s.manifest);
    assert!(s.manifest.contains("min: 450"), "{}", s.manifest);
    assert!(!s.manifest.contains("initech"), "{}", s.manifest);
    // The approval threshold and the forbid are kept as they were.
    assert!(
        s.manifest.contains("context.args.amount > 5000"),
        "{}",
        s.manifest
    );
    assert!(
        s.manifest.contains("procurement.approve_*"),
        "{}",
        s.manifest
    );
}

#[test]
fn a_glob_is_split_into_the_names_used() {
    let source = format!(
        "{}tools:\n  - name: repo.*\n    args:\n      n: {{ max: 100 }}\nelevation:\n  - name: boost\n    tools: [repo.write]\n    max_duration: 1h\n    approvers: [bob]\n",
        common::HEAD
    );
    let current = compile(&source);
    let used = [
        ("repo.read", serde_json::json!({"n": 3})),
        ("repo.list", serde_json::json!({"n": 40})),
    ];
    let r = report(current.manifest(), &activity("test-bot", &used));
    let s = suggest(&source, &r, "7d").unwrap();
    assert!(!is_widening(&s.changes), "{:#?}", s.changes);
    let m = compile(&s.manifest);
    let names: Vec<&str> = m.manifest().tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["repo.list", "repo.read"], "{}", s.manifest);
    assert!(s.manifest.contains("max: 44"), "{}", s.manifest);
    let flagged = s
        .evidence
        .iter()
        .find(|e| e.path == "elevation[0]")
        .unwrap();
    assert!(flagged.message.contains("never used"), "{flagged:?}");
    // The elevation is flagged, not removed.
    assert_eq!(m.manifest().elevation.len(), 1);
}

#[test]
fn nothing_used_as_granted_suggests_nothing() {
    let source = format!("{}tools:\n  - name: ci.run\n", common::HEAD);
    let current = compile(&source);
    let r = report(
        current.manifest(),
        &activity("test-bot", &[("ci.run", serde_json::json!({}))]),
    );
    let s = suggest(&source, &r, "30d").unwrap();
    assert!(s.evidence.is_empty(), "{:#?}", s.evidence);
    assert_eq!(s.manifest, s.current);
    assert!(s.changes.is_empty());
}

/// Over generated manifests and requests: the suggestion from the allowed
/// ones allows every one of them again, allows nothing the version in
/// force did not, and is never widening. Enough requests are allowed, and
/// enough suggestions change something, for this to say something.
#[test]
fn a_suggestion_keeps_what_was_used_and_allows_nothing_new() {
    const CASES: u32 = 384;
    let allowed_total = std::cell::Cell::new(0usize);
    let narrowed = std::cell::Cell::new(0usize);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(CASES));
    let strategy = (spec(), requests(), requests());
    let result = runner.run(&strategy, |(s, history, later)| {
        let source = s.yaml();
        let current = compile(&source);
        let allowed: Vec<_> = history
            .iter()
            .filter(|(action, args, resource, elevated)| {
                decide(&current, action, args, *resource, *elevated) == Effect::Allow
            })
            .cloned()
            .collect();
        allowed_total.set(allowed_total.get() + allowed.len());
        let used: Vec<(&str, serde_json::Value)> = allowed
            .iter()
            .map(|(a, args, _, _)| (*a, args.clone()))
            .collect();
        let r = report(current.manifest(), &activity("test-bot", &used));
        let sug = suggest(&source, &r, "30d").unwrap();
        prop_assert!(
            !is_widening(&sug.changes),
            "{:#?}\n{}",
            sug.changes,
            sug.manifest
        );
        if !sug.evidence.is_empty() {
            narrowed.set(narrowed.get() + 1);
        }
        let next = compile(&sug.manifest);
        for (action, args, resource, elevated) in &allowed {
            prop_assert_eq!(
                decide(&next, action, args, *resource, *elevated),
                Effect::Allow,
                "`{}` {} was used and is refused by\n{}--- from\n{}",
                action,
                args,
                sug.manifest,
                source
            );
        }
        for (action, args, resource, elevated) in history.iter().chain(&later) {
            if decide(&current, action, args, *resource, *elevated) != Effect::Allow {
                prop_assert_ne!(
                    decide(&next, action, args, *resource, *elevated),
                    Effect::Allow,
                    "`{}` {} is allowed only by the suggestion\n{}",
                    action,
                    args,
                    sug.manifest
                );
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        allowed_total.get() >= 200 && narrowed.get() >= 100,
        "{} allowed requests, {} suggestions that narrowed: the property proves little",
        allowed_total.get(),
        narrowed.get()
    );
}
