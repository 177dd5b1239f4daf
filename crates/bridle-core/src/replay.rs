//! What-if on history: every recorded decision of an agent decided again
//! against a candidate manifest, with what would change. An allow that
//! becomes a deny would break the agent; a deny that becomes an allow
//! would widen it.
//!
//! Each decision is replayed as it was asked: the recorded action,
//! arguments and resource, at its recorded time (schedules and `expires`
//! as then), with the delegation chain it came through (the other agents
//! of the chain as given by the caller, usually their versions in force).
//! What the record does not hold is taken as follows:
//! - lifecycle: the agent is taken as active (a replay asks about policy);
//! - approvals: a recorded decision that consumed an approval is replayed
//!   with that approval granted; any other finds none;
//! - elevations: a decision allowed under an elevation is replayed with
//!   the candidate's elevations covering the action active;
//! - limits and budgets: counted from the replayed decisions themselves,
//!   in order (what the candidate would have allowed);
//! - token scope: not recorded, so not narrowed.
//!
//! Skipped, and counted as such: refusals an enforcement point made before
//! any decision (no route, ambiguous request), decisions through an agent
//! the caller could not give, and decisions whose sensitive arguments
//! (recorded only as keyed hashes) the candidate constrains.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::audit::{AuditEvent, EventType};
use crate::decision::{Effect, Reason, ReasonCode};
use crate::engine::{ActionRequest, AgentState, ApprovalLookup, ApprovalStatus, DecisionInput};
use crate::id::ApprovalId;
use crate::ledger::MemoryLedger;
use crate::{CompiledAgent, Engine, Subject};

/// One decision whose effect the candidate changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    pub decision_id: String,
    pub seq: u64,
    pub time: Timestamp,
    pub action: String,
    pub from: Effect,
    pub to: Effect,
    /// Why the candidate decides as it does.
    pub reasons: Vec<Reason>,
}

/// The replay of a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Decisions replayed.
    pub decisions: usize,
    pub unchanged: usize,
    /// Recorded decisions that could not be replayed (see the module).
    pub skipped: usize,
    pub changed: Vec<Changed>,
    /// Changes counted by kind: `allow_to_deny`, `deny_to_allow`,
    /// `allow_to_approval_required`, ….
    pub summary: BTreeMap<String, usize>,
}

impl ReplayReport {
    /// Recorded allows the candidate would deny or hold for approval.
    pub fn breaks(&self) -> usize {
        self.changed
            .iter()
            .filter(|c| c.from == Effect::Allow)
            .count()
    }

    /// Recorded denials (or approvals asked) the candidate would allow.
    pub fn widens(&self) -> usize {
        self.changed
            .iter()
            .filter(|c| c.to == Effect::Allow)
            .count()
    }
}

/// Replays `events` (an agent's audit records, in `seq` order; anything
/// but its decisions is ignored) against `candidate`, the other agents of
/// each chain taken from `others` by id.
pub fn replay(
    engine: &Engine,
    candidate: &CompiledAgent,
    others: &HashMap<String, CompiledAgent>,
    events: &[AuditEvent],
) -> ReplayReport {
    let ledger = MemoryLedger::new();
    let mut report = ReplayReport {
        decisions: 0,
        unchanged: 0,
        skipped: 0,
        changed: Vec::new(),
        summary: BTreeMap::new(),
    };
    let me = candidate.manifest().agent.as_str();
    for event in events {
        let body = &event.body;
        if body.kind != EventType::Decision || body.agent.as_deref() != Some(me) {
            continue;
        }
        let (Some(action), Some(from)) = (body.action.as_deref(), body.decision) else {
            continue;
        };
        let detail = body.detail.as_ref().and_then(Value::as_object);
        let refused = detail.is_some_and(|d| d.contains_key("why")) || body.reasons.is_none();
        let empty = Map::new();
        let args = body
            .args
            .as_ref()
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let Some(chain) = chain_of(detail, candidate, others) else {
            report.skipped += 1;
            continue;
        };
        if refused || constrains_redacted(candidate, action, args) {
            report.skipped += 1;
            continue;
        }
        let elevated = body
            .reasons
            .iter()
            .flatten()
            .any(|r| r.code == ReasonCode::Elevated);
        let elevations: Vec<Vec<String>> = chain
            .iter()
            .map(|c| {
                if !elevated {
                    return Vec::new();
                }
                c.manifest()
                    .elevation
                    .iter()
                    .filter(|e| e.tools.iter().any(|g| g.matches(action)))
                    .map(|e| e.name.clone())
                    .collect()
            })
            .collect();
        let subjects: Vec<Subject<'_>> = chain
            .iter()
            .zip(&elevations)
            .map(|(agent, elevations)| Subject {
                agent,
                state: AgentState::Active,
                elevations,
            })
            .collect();
        let input = DecisionInput {
            subjects: &subjects,
            scope: None,
            action: ActionRequest {
                name: action,
                args,
                resource: body.resource.as_deref(),
            },
            now: body.time,
        };
        let consumed = detail
            .and_then(|d| d.get("consumed_approval"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<ApprovalId>().ok());
        let decided = engine.decide(&input, &ledger, &Recorded(consumed));
        if decided.decision.effect == Effect::Allow {
            decided.usage.commit(&ledger);
        }
        report.decisions += 1;
        let to = decided.decision.effect;
        if to == from {
            report.unchanged += 1;
            continue;
        }
        *report
            .summary
            .entry(format!("{}_to_{}", from.as_str(), to.as_str()))
            .or_default() += 1;
        report.changed.push(Changed {
            decision_id: detail
                .and_then(|d| d.get("decision_id"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            seq: event.seq,
            time: body.time,
            action: action.to_owned(),
            from,
            to,
            reasons: decided.decision.reasons,
        });
    }
    report
}

/// The chain a decision came through, with the candidate in the
/// replayed agent's place; `None` when an agent of it is not in `others`.
fn chain_of<'a>(
    detail: Option<&Map<String, Value>>,
    candidate: &'a CompiledAgent,
    others: &'a HashMap<String, CompiledAgent>,
) -> Option<Vec<&'a CompiledAgent>> {
    let ids: Vec<&str> = detail
        .and_then(|d| d.get("chain"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut chain = vec![candidate];
    for id in ids.iter().skip(1) {
        chain.push(others.get(*id)?);
    }
    Some(chain)
}

/// Whether the candidate constrains an argument of `action` whose value was
/// recorded only as a keyed hash: deciding on the hash would be wrong.
fn constrains_redacted(candidate: &CompiledAgent, action: &str, args: &Map<String, Value>) -> bool {
    let redacted: Vec<&str> = args
        .iter()
        .filter(|(_, v)| v.as_str().is_some_and(|s| s.starts_with("hmac-sha256:")))
        .map(|(k, _)| k.as_str())
        .collect();
    !redacted.is_empty()
        && candidate
            .manifest()
            .tools
            .iter()
            .filter(|t| t.name.matches(action))
            .any(|t| {
                t.when.is_some()
                    || t.approval.as_ref().is_some_and(|a| a.when.is_some())
                    || t.args.iter().any(|c| redacted.contains(&c.arg.as_str()))
            })
}

/// The approval a recorded decision consumed, granted again.
struct Recorded(Option<ApprovalId>);

impl ApprovalLookup for Recorded {
    fn find(&self, _key: &str, _now: Timestamp) -> ApprovalStatus {
        self.0
            .clone()
            .map_or(ApprovalStatus::None, ApprovalStatus::Granted)
    }
}
