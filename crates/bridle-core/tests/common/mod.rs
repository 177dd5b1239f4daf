//! Shared helpers for the core's integration tests: compile manifests, build
//! decision inputs with a fixed clock, and a scriptable approval store.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use bridle_core::engine::{
    ActionRequest, AgentState, ApprovalLookup, ApprovalStatus, DecisionInput, Engine, NoApprovals,
    Subject, approval_key,
};
use bridle_core::ledger::{Ledger, MemoryLedger};
use bridle_core::{CompiledAgent, Decision, Guardrails, Manifest, ReasonCode};
use jiff::Timestamp;
use serde_json::{Map, Value};

/// The first lines of every inline test manifest (5 lines, so the manifest's
/// own keys start on line 6).
pub const HEAD: &str = "agent: test-bot\nowner: alice\npurpose: Exercise the engine\nenvironment: dev\nexpires: 2027-12-31\n";

/// A Monday, noon UTC: inside every example's schedule and before every expiry.
pub const NOON: &str = "2026-06-01T12:00:00Z";

pub fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

pub fn parse(source: &str) -> Manifest {
    match Manifest::from_source(source) {
        Ok(m) => m,
        Err(e) => panic!("manifest does not parse: {e}\n---\n{source}"),
    }
}

pub fn compile_with(source: &str, guardrails: &Guardrails) -> CompiledAgent {
    CompiledAgent::compile(parse(source), guardrails).unwrap()
}

pub fn compile(source: &str) -> CompiledAgent {
    compile_with(source, &Guardrails::new())
}

/// `HEAD` followed by `body`, compiled.
pub fn agent(body: &str) -> CompiledAgent {
    compile(&format!("{HEAD}{body}"))
}

/// One of the files in `examples/`, by agent id.
pub fn example(name: &str) -> CompiledAgent {
    let path = examples_dir().join(format!("{name}.yaml"));
    compile(&std::fs::read_to_string(&path).unwrap())
}

pub fn args(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("arguments must be an object, got {other}"),
    }
}

/// One decision request, built up step by step. Subjects are the token's
/// subject first, then the delegate(s).
#[derive(Debug, Clone)]
pub struct Req<'a> {
    subjects: Vec<(&'a CompiledAgent, AgentState, Vec<String>)>,
    scope: Option<Vec<String>>,
    action: String,
    args: Map<String, Value>,
    resource: Option<String>,
    now: Timestamp,
}

impl<'a> Req<'a> {
    pub fn new(agent: &'a CompiledAgent, action: &str) -> Self {
        Self {
            subjects: vec![(agent, AgentState::Active, Vec::new())],
            scope: None,
            action: action.to_owned(),
            args: Map::new(),
            resource: None,
            now: at(NOON),
        }
    }

    pub fn args(mut self, v: Value) -> Self {
        self.args = args(v);
        self
    }

    pub fn resource(mut self, r: &str) -> Self {
        self.resource = Some(r.to_owned());
        self
    }

    pub fn at(mut self, s: &str) -> Self {
        self.now = at(s);
        self
    }

    pub fn now(mut self, t: Timestamp) -> Self {
        self.now = t;
        self
    }

    /// State of the most recently added subject.
    pub fn state(mut self, state: AgentState) -> Self {
        if let Some(last) = self.subjects.last_mut() {
            last.1 = state;
        }
        self
    }

    /// Activate an elevation of the most recently added subject.
    pub fn elevation(mut self, name: &str) -> Self {
        if let Some(last) = self.subjects.last_mut() {
            last.2.push(name.to_owned());
        }
        self
    }

    /// Add a delegate acting for the subjects so far.
    pub fn delegate(mut self, agent: &'a CompiledAgent) -> Self {
        self.subjects.push((agent, AgentState::Active, Vec::new()));
        self
    }

    pub fn scope(mut self, scope: &[&str]) -> Self {
        self.scope = Some(scope.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    fn with_input<T>(&self, f: impl FnOnce(&DecisionInput<'_>) -> T) -> T {
        let subjects: Vec<Subject<'_>> = self
            .subjects
            .iter()
            .map(|(agent, state, elevations)| Subject {
                agent,
                state: *state,
                elevations,
            })
            .collect();
        let input = DecisionInput {
            subjects: &subjects,
            scope: self.scope.as_deref(),
            action: ActionRequest {
                name: &self.action,
                args: &self.args,
                resource: self.resource.as_deref(),
            },
            now: self.now,
        };
        f(&input)
    }

    /// Decide with a fresh ledger and no approvals.
    pub fn decide(&self) -> Decision {
        self.decide_with(&MemoryLedger::new(), &NoApprovals)
    }

    /// Decide, then commit the decision's usage to `ledger` (as the server
    /// does once a decision stands).
    pub fn decide_with(&self, ledger: &dyn Ledger, approvals: &dyn ApprovalLookup) -> Decision {
        let decided = self.with_input(|input| Engine::new().decide(input, ledger, approvals));
        decided.usage.commit(ledger);
        decided.decision
    }

    /// The approval key the engine binds this exact request to.
    pub fn key(&self) -> String {
        self.with_input(approval_key)
    }
}

/// An approval store with scripted answers per key; remembers every key it
/// was asked about.
#[derive(Debug, Default)]
pub struct Approvals {
    answers: HashMap<String, ApprovalStatus>,
    pub asked: RefCell<Vec<String>>,
}

impl Approvals {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, key: String, status: ApprovalStatus) -> Self {
        self.answers.insert(key, status);
        self
    }
}

impl ApprovalLookup for Approvals {
    fn find(&self, key: &str, _now: Timestamp) -> ApprovalStatus {
        self.asked.borrow_mut().push(key.to_owned());
        self.answers
            .get(key)
            .cloned()
            .unwrap_or(ApprovalStatus::None)
    }
}

/// The reason codes of a decision, in order.
pub fn codes(d: &Decision) -> Vec<ReasonCode> {
    d.reasons.iter().map(|r| r.code).collect()
}

/// Like [`agent`], under another agent id.
pub fn agent_named(id: &str, body: &str) -> CompiledAgent {
    compile(&format!("{HEAD}{body}").replace("agent: test-bot", &format!("agent: {id}")))
}
