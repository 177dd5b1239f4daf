//! Obligations and explanations: `log_retrieval` obligations, deterministic
//! explanations in manifest order, and one scenario per reason code of the
//! API contract.

use std::collections::HashSet;

use bridle_core::decision::Obligation;
use bridle_core::engine::ApprovalStatus;
use bridle_core::ledger::MemoryLedger;
use bridle_core::{AgentState, Effect, Guardrails, ReasonCode};
use serde_json::json;

use crate::approval_id;
use crate::common::{Approvals, HEAD, Req, agent, agent_named, codes, compile_with, example};

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
        // The literal `e.f` governs `e.f` among the elevation tools.
        let d = Req::new(&b, "e.f").elevation("up").decide();
        assert_eq!(paths(&d), ["elevation[0].tools[1]"]);
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
            .state(AgentState::Proposed)
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
