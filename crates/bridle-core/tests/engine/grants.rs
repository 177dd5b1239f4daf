//! Grants and forbids: `granted`, `not_granted` and `forbidden`, from the
//! manifest's own `forbid` list and from organisation guardrails.

use bridle_core::compile::GuardrailError;
use bridle_core::ledger::MemoryLedger;
use bridle_core::{Effect, Guardrails, ReasonCode};
use serde_json::json;

use crate::common::{self, Approvals, HEAD, Req, agent, at, codes, compile_with};

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
    let d = bridle_core::Engine::new()
        .decide(&input, &MemoryLedger::new(), &Approvals::new())
        .decision;
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
