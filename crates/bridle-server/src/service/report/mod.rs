//! The compliance report: per agent, how it stands against each control of
//! the three frameworks ([`controls`]), with the evidence an auditor asks
//! for — its manifest versions, last access review, approvals, the range
//! of its audit records and its decisions over the window — and the state
//! of the audit chain (verified, latest signed checkpoint).
//!
//! Everything is read as of `now` and from `since` on; what the store holds
//! decides the numbers, so the same store and instant give the same report
//! (rendered in [`crate::report`]).

pub mod controls;

use std::collections::BTreeMap;

use bridle_core::decision::Effect;
use bridle_store::{
    AgentRow, AgentVersion, Approval, ApprovalState, ApprovalStore as _, AuditRange,
    CheckpointStore as _, RegistryRead as _,
};
use jiff::Timestamp;
use jiff::civil::Date;

use super::ServiceError;
use super::findings::{self, Finding};
use crate::state::AppState;

/// The whole report.
#[derive(Debug, Clone)]
pub struct Report {
    pub generated_at: Timestamp,
    /// The window as asked (`30d`).
    pub window: String,
    pub since: Timestamp,
    pub chain: Chain,
    pub agents: Vec<AgentEvidence>,
}

/// The audit chain as verified now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub verified: bool,
    /// Records read.
    pub events: u64,
    pub first_bad_seq: Option<u64>,
    /// The latest signed checkpoint: its `seq` and when it was signed.
    pub checkpoint: Option<(u64, Timestamp)>,
}

/// The manifest versions of an agent and the one in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    pub count: u64,
    pub in_force: i64,
    /// Who applied the version in force, and when.
    pub applied_by: Option<String>,
    pub applied_at: Option<Timestamp>,
}

/// The approvals of an agent created in the window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approvals {
    pub requested: u64,
    pub approved: u64,
    pub denied: u64,
    pub expired: u64,
    pub pending: u64,
    pub cancelled: u64,
    /// Seconds from request to decision of each decided one, ascending.
    pub latencies: Vec<i64>,
}

impl Approvals {
    /// The median latency (the lower middle of an even count).
    pub fn p50(&self) -> Option<i64> {
        let n = self.latencies.len();
        if n == 0 {
            return None;
        }
        self.latencies.get((n - 1) / 2).copied()
    }

    pub fn max(&self) -> Option<i64> {
        self.latencies.last().copied()
    }
}

/// One day of an agent's decisions by effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    pub date: Date,
    pub allow: i64,
    pub deny: i64,
    pub approval_required: i64,
}

/// Everything the report says about one agent.
#[derive(Debug, Clone)]
pub struct AgentEvidence {
    pub row: AgentRow,
    pub versions: Versions,
    pub approvals: Approvals,
    pub audit: AuditRange,
    /// Decisions by effect (`allow`, `deny`, `approval_required`).
    pub outcomes: BTreeMap<&'static str, i64>,
    /// Denials by reason code.
    pub denials: BTreeMap<String, i64>,
    /// Every day of the window, oldest first.
    pub days: Vec<Day>,
    pub findings: Vec<Finding>,
}

/// The report over `rows` (the agents the caller may see), from
/// `now - window` on.
pub async fn compliance(
    state: &AppState,
    rows: &[AgentRow],
    window: (String, jiff::SignedDuration),
    now: Timestamp,
) -> Result<Report, ServiceError> {
    let since = now.checked_sub(window.1).unwrap_or(Timestamp::MIN);
    let store = state.store();
    let verification = crate::checkpoints::verify_log(store, &[]).await?;
    let checkpoint = store.latest_checkpoint().await?.map(|cp| (cp.seq, cp.time));
    let chain = Chain {
        verified: verification.ok,
        events: verification.events,
        first_bad_seq: verification.first_bad_seq,
        checkpoint,
    };
    let all_approvals = store.approvals(None, now).await?;
    let mut agents = Vec::with_capacity(rows.len());
    for row in rows {
        let versions = versions(row, &store.agent_versions(&row.id).await?);
        let approvals = approvals(
            all_approvals
                .iter()
                .filter(|a| a.agent == row.id && a.created_at >= since),
        );
        let audit = store.audit_range(&row.id, since).await?;
        let activity = store.activity(&row.id, since).await?;
        let mut outcomes: BTreeMap<&'static str, i64> =
            [Effect::Allow, Effect::Deny, Effect::ApprovalRequired]
                .into_iter()
                .map(|e| (e.as_str(), 0))
                .collect();
        let mut denials: BTreeMap<String, i64> = BTreeMap::new();
        for a in &activity {
            *outcomes.entry(a.effect.as_str()).or_default() += a.uses;
            if a.effect == Effect::Deny {
                *denials.entry(a.reason.clone()).or_default() += a.uses;
            }
        }
        let hourly = store.hourly_activity(&row.id, since).await?;
        let days = days(since, now, &hourly);
        let findings = findings::of_agent(state, row).await?;
        agents.push(AgentEvidence {
            row: row.clone(),
            versions,
            approvals,
            audit,
            outcomes,
            denials,
            days,
            findings,
        });
    }
    Ok(Report {
        generated_at: now,
        window: window.0,
        since,
        chain,
        agents,
    })
}

fn versions(row: &AgentRow, all: &[AgentVersion]) -> Versions {
    let in_force = all.iter().find(|v| v.version == row.version);
    Versions {
        count: u64::try_from(all.len()).unwrap_or(u64::MAX),
        in_force: row.version,
        applied_by: in_force.map(|v| v.created_by.to_string()),
        applied_at: in_force.map(|v| v.created_at),
    }
}

/// Counts by outcome and the latency of each decided approval: from its
/// request to its last vote.
pub fn approvals<'a>(list: impl Iterator<Item = &'a Approval>) -> Approvals {
    let mut out = Approvals::default();
    for a in list {
        out.requested += 1;
        let decided = match a.state {
            ApprovalState::Approved | ApprovalState::Consumed => {
                out.approved += 1;
                true
            }
            ApprovalState::Denied => {
                out.denied += 1;
                true
            }
            ApprovalState::Expired => {
                out.expired += 1;
                false
            }
            ApprovalState::Pending => {
                out.pending += 1;
                false
            }
            ApprovalState::Cancelled => {
                out.cancelled += 1;
                false
            }
        };
        if decided && let Some(at) = a.votes.iter().map(|v| v.at).max() {
            out.latencies
                .push(at.duration_since(a.created_at).as_secs().max(0));
        }
    }
    out.latencies.sort_unstable();
    out
}

/// Every UTC day from `since` to `now` with the decisions of its hours.
pub fn days(since: Timestamp, now: Timestamp, hourly: &[bridle_store::HourlyUses]) -> Vec<Day> {
    let date = |t: Timestamp| t.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    let mut by_day: BTreeMap<Date, Day> = BTreeMap::new();
    let mut d = date(since);
    let last = date(now);
    while d <= last {
        by_day.insert(
            d,
            Day {
                date: d,
                allow: 0,
                deny: 0,
                approval_required: 0,
            },
        );
        match d.tomorrow() {
            Ok(next) => d = next,
            Err(_) => break,
        }
    }
    for h in hourly {
        let Ok(t) = Timestamp::from_second(h.hour.saturating_mul(3600)) else {
            continue;
        };
        if let Some(day) = by_day.get_mut(&date(t)) {
            match h.effect {
                Effect::Allow => day.allow += h.uses,
                Effect::Deny => day.deny += h.uses,
                Effect::ApprovalRequired => day.approval_required += h.uses,
            }
        }
    }
    by_day.into_values().collect()
}
