//! `POST /v1/agents/{id}/replay`: what a candidate manifest would have
//! decided differently.

use std::collections::BTreeMap;

use bridle_core::replay::{Changed, ReplayReport};
use serde::Serialize;
use utoipa::ToSchema;

use super::decision::{Effect, Reason};
use super::time::instant;

/// A replay of an agent's recorded decisions against a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReplayView {
    pub agent: String,
    /// The window asked for (`7d`).
    pub window: String,
    pub since: String,
    /// Decisions replayed.
    pub decisions: usize,
    pub unchanged: usize,
    /// Recorded decisions that could not be replayed: refusals made before
    /// any decision, chains through an agent no longer in the registry,
    /// and sensitive arguments (kept only as keyed hashes) the candidate
    /// constrains.
    pub skipped: usize,
    pub changed: Vec<ChangedView>,
    /// Changes by kind: `allow_to_deny` would break the agent,
    /// `deny_to_allow` would widen it.
    pub summary: BTreeMap<String, usize>,
}

/// One decision the candidate decides differently.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ChangedView {
    pub decision_id: String,
    /// The audit record's `seq`.
    pub seq: u64,
    pub time: String,
    pub action: String,
    pub from: Effect,
    pub to: Effect,
    /// Why the candidate decides as it does.
    pub reasons: Vec<Reason>,
}

impl ReplayView {
    pub fn new(agent: String, window: String, since: jiff::Timestamp, r: ReplayReport) -> Self {
        Self {
            agent,
            window,
            since: instant(since),
            decisions: r.decisions,
            unchanged: r.unchanged,
            skipped: r.skipped,
            changed: r.changed.into_iter().map(Into::into).collect(),
            summary: r.summary,
        }
    }
}

impl From<Changed> for ChangedView {
    fn from(c: Changed) -> Self {
        Self {
            decision_id: c.decision_id,
            seq: c.seq,
            time: instant(c.time),
            action: c.action,
            from: c.from.into(),
            to: c.to.into(),
            reasons: c.reasons.into_iter().map(Into::into).collect(),
        }
    }
}
