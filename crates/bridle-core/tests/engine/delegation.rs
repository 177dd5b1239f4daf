//! Delegation: a chain of agents gets only what every record (and the
//! token's scope) allows, and each agent spends its own limits.

use bridle_core::ledger::MemoryLedger;
use bridle_core::{AgentState, Effect, ReasonCode};
use serde_json::json;

use crate::common::{self, Approvals, Req, agent, agent_named, at, codes, example};
use crate::secs;

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
