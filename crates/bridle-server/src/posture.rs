//! Continuous posture: every agent's findings ([`crate::service::findings`])
//! computed every `posture.every`, and for one agent as soon as its record
//! changes (a manifest applied, a lifecycle change, a credential issued or
//! revoked, its owner deactivated). What a sweep finds is kept in the store
//! ([`bridle_store::FindingStore`]); each finding that opens or resolves is
//! audited (`finding` events) and sent to the webhooks as a CloudEvent
//! (`bridle.finding.opened`, `bridle.finding.resolved`). With several
//! replicas each sweeps, and the store's conditional writes let exactly one
//! report each change. An agent whose review is overdue by more than
//! `posture.suspend_review_overdue_after` is suspended.
//!
//! All of it runs in the background, never on a request's path; a failed
//! round is logged and retried on the next.

#![expect(
    clippy::disallowed_methods,
    reason = "a background task below the transports: it reads every agent's record and keeps its findings"
)]

use std::time::Duration;

use bridle_core::audit::EventType;
use bridle_core::engine::AgentState;
use bridle_core::id::AgentId;
use bridle_core::manifest::units;
use bridle_store::{
    AgentRow, FindingRow, FindingStore as _, RegistryRead as _, RegistryWrite as _, SeenFinding,
    StateBy,
};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Deserializer};
use tokio::sync::mpsc;

use crate::service::ServiceError;
use crate::service::findings::{self, FindingCode};
use crate::state::AppState;

/// The actor of what the sweep does on its own.
pub const ACTOR: &str = "system:posture";

/// `[posture]` in the configuration file. Durations are written as in a
/// manifest (`15m`, `30d`). Unknown keys are errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostureConfig {
    /// Whether findings are swept at all (on by default).
    pub enabled: bool,
    /// How often every agent is swept.
    #[serde(deserialize_with = "duration")]
    pub every: SignedDuration,
    /// An agent registered longer than this without a decision in it is
    /// `inactive`.
    #[serde(deserialize_with = "duration")]
    pub inactive_after: SignedDuration,
    /// The usage window for `unused_grants`.
    #[serde(deserialize_with = "duration")]
    pub unused_window: SignedDuration,
    /// Denied actions within 24 hours that make `many_denials`.
    pub denials_per_day: u32,
    /// The window in which requests under an approval threshold are added
    /// up (`approval_structuring`).
    #[serde(deserialize_with = "duration")]
    pub structuring_window: SignedDuration,
    /// At least this many such requests...
    pub structuring_min: u32,
    /// ...each within this percentage below the threshold.
    pub structuring_band_percent: u32,
    /// Suspend an active agent whose access review is overdue by more than
    /// this (unset: never).
    #[serde(deserialize_with = "maybe_duration")]
    pub suspend_review_overdue_after: Option<SignedDuration>,
}

impl Default for PostureConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            every: SignedDuration::from_mins(15),
            inactive_after: SignedDuration::from_hours(30 * 24),
            unused_window: SignedDuration::from_hours(30 * 24),
            denials_per_day: 50,
            structuring_window: SignedDuration::from_hours(24),
            structuring_min: 3,
            structuring_band_percent: 20,
            suspend_review_overdue_after: None,
        }
    }
}

/// Why `[posture]` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostureConfigError {
    #[error("posture.{0} must be positive")]
    NotPositive(&'static str),
    #[error("posture.structuring_band_percent must be between 1 and 100")]
    Band,
}

impl PostureConfig {
    pub fn validate(&self) -> Result<(), PostureConfigError> {
        for (name, d) in [
            ("every", self.every),
            ("inactive_after", self.inactive_after),
            ("unused_window", self.unused_window),
            ("structuring_window", self.structuring_window),
        ] {
            if !d.is_positive() {
                return Err(PostureConfigError::NotPositive(name));
            }
        }
        if self
            .suspend_review_overdue_after
            .is_some_and(|d| d.is_negative())
        {
            return Err(PostureConfigError::NotPositive(
                "suspend_review_overdue_after",
            ));
        }
        if self.denials_per_day == 0 {
            return Err(PostureConfigError::NotPositive("denials_per_day"));
        }
        if self.structuring_min == 0 {
            return Err(PostureConfigError::NotPositive("structuring_min"));
        }
        if !(1..=100).contains(&self.structuring_band_percent) {
            return Err(PostureConfigError::Band);
        }
        Ok(())
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<SignedDuration, D::Error> {
    let text = String::deserialize(d)?;
    units::parse_duration(&text).map_err(serde::de::Error::custom)
}

fn maybe_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SignedDuration>, D::Error> {
    duration(d).map(Some)
}

/// Asks the sweep to look at one agent now (or at every agent), from
/// wherever its record changed. Never blocks: a full queue means a sweep is
/// coming anyway.
#[derive(Debug)]
pub struct Trigger {
    tx: mpsc::Sender<Option<AgentId>>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<Option<AgentId>>>>,
}

impl Default for Trigger {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(1024);
        Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
        }
    }
}

impl Trigger {
    /// Sweep `agent` soon.
    pub fn agent(&self, agent: &AgentId) {
        let _ = self.tx.try_send(Some(agent.clone()));
    }

    /// Sweep the agent an audit event is about, if it names one: called
    /// with each change to a record, before its event is appended.
    pub fn about(&self, event: &bridle_core::audit::EventBody) {
        if let Some(agent) = event.agent.as_deref().and_then(|a| a.parse().ok()) {
            self.agent(&agent);
        }
    }

    fn take(&self) -> Option<mpsc::Receiver<Option<AgentId>>> {
        self.rx.lock().ok()?.take()
    }
}

/// The sweep: every agent at start and every `posture.every`, and the
/// agents [`Trigger`]ed in between.
pub async fn run(state: AppState) {
    let Some(mut rx) = state.posture.take() else {
        return;
    };
    if !state.config.posture.enabled {
        return;
    }
    let every = Duration::try_from(state.config.posture.every).unwrap_or(Duration::from_secs(900));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let which = tokio::select! {
            _ = tick.tick() => None,
            got = rx.recv() => match got {
                Some(which) => which,
                None => return,
            },
        };
        match which {
            Some(agent) => guarded(&state, agent).await,
            None => sweep_all(&state).await,
        }
    }
}

/// Sweeps one agent in a task of its own, so that nothing one record
/// holds can end the sweep of the others; failures are logged and retried
/// on the next round.
async fn guarded(state: &AppState, agent: AgentId) {
    let task = tokio::spawn({
        let state = state.clone();
        let agent = agent.clone();
        async move { sweep_agent(&state, &agent).await }
    });
    match task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(%agent, error = %e, "posture: cannot sweep the agent; retried next round");
        }
        Err(e) => tracing::error!(%agent, error = %e, "posture: the sweep of the agent failed"),
    }
}

/// Sweeps every agent once. Only the ids are listed up front: every
/// record (manifest and source) held at once took a 100,000-agent
/// registry's server past 1 GiB resident (`bench/coldstart.sh`).
pub async fn sweep_all(state: &AppState) {
    let ids = match state.store().agent_ids().await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "posture: cannot list the agents");
            return;
        }
    };
    for id in ids {
        guarded(state, id).await;
    }
}

/// Sweeps one agent: its findings now are kept, what opened or resolved is
/// audited and announced, and an agent overdue for review past the grace
/// period is suspended.
pub async fn sweep_agent(state: &AppState, agent: &AgentId) -> Result<(), ServiceError> {
    // Read now, not when the round began: a replica must not judge a
    // record another has changed since.
    let Some(row) = state.store().agent(agent).await? else {
        return Ok(());
    };
    let row = &row;
    let now = Timestamp::now();
    let found = match row.state {
        // A retired agent's findings resolve; a proposed one has none yet.
        AgentState::Retired | AgentState::Proposed => Vec::new(),
        _ => findings::of_agent(state, row).await?,
    };
    let seen: Vec<SeenFinding> = found
        .iter()
        .map(|f| SeenFinding {
            code: f.code.as_str().to_owned(),
            subject: f.subject.clone(),
            severity: f.code.severity().as_str().to_owned(),
            detail: f.detail.clone(),
            evidence: f.evidence.clone(),
        })
        .collect();
    let synced = state.store().sync_findings(&row.id, &seen, now).await?;
    let changes: Vec<(&FindingRow, &str)> = synced
        .opened
        .iter()
        .map(|f| (f, "opened"))
        .chain(synced.resolved.iter().map(|f| (f, "resolved")))
        .collect();
    for (k, (f, op)) in changes.iter().enumerate() {
        if let Err(e) = announce(state, f, op).await {
            // Take back this one and every one not yet announced, so the
            // next sweep reports them; keep the first error.
            for (f, op) in changes.iter().skip(k) {
                let undone = if *op == "opened" {
                    state.store().unopen_finding(f).await
                } else {
                    state.store().unresolve_finding(f).await
                };
                if let Err(undo) = undone {
                    tracing::error!(agent = %f.agent, code = %f.code, error = %undo, "posture: cannot take back an unannounced finding");
                }
            }
            return Err(e);
        }
    }
    if let Some(grace) = state.config.posture.suspend_review_overdue_after
        && row.state == AgentState::Active
        && found.iter().any(|f| f.code == FindingCode::ReviewOverdue)
        && let Some(every) = row
            .manifest
            .get("review_every")
            .and_then(|v| v.as_str())
            .and_then(|v| units::parse_duration(v).ok())
    {
        let due = row
            .last_review_at
            .unwrap_or(row.created_at)
            .checked_add(every);
        if let Ok(due) = due
            && due.checked_add(grace).is_ok_and(|end| end < now)
        {
            suspend_overdue(state, row, due, grace).await?;
        }
    }
    Ok(())
}

/// Audits a finding's opening or resolution, then sends it to the webhooks.
async fn announce(state: &AppState, f: &FindingRow, op: &str) -> Result<(), ServiceError> {
    let code = FindingCode::ALL.into_iter().find(|c| c.as_str() == f.code);
    let data = serde_json::json!({
        "op": op,
        "agent": f.agent.as_str(),
        "code": f.code,
        "subject": f.subject,
        "severity": f.severity,
        "title": code.map(FindingCode::title),
        "detail": f.detail,
        "remediation": code.map(FindingCode::remediation),
        "frameworks": code.map(FindingCode::frameworks),
        "evidence": f.evidence,
        "opened_at": crate::views::time::instant(f.opened_at),
        "resolved_at": f.resolved_at.map(crate::views::time::instant),
    });
    let mut event = state.event(EventType::Finding, ACTOR);
    event.agent = Some(f.agent.to_string());
    event.detail = Some(data.clone());
    state.audit.append(event).await?;
    state.http.notify(
        &format!("bridle.finding.{op}"),
        &format!("agents/{}", f.agent),
        data,
    );
    Ok(())
}

/// Suspends an agent whose review was due at `due`, `grace` ago.
async fn suspend_overdue(
    state: &AppState,
    row: &AgentRow,
    due: Timestamp,
    grace: SignedDuration,
) -> Result<(), ServiceError> {
    let reason = format!(
        "access review overdue since {} by more than the grace period of {}",
        crate::views::time::instant(due),
        units::format_duration(grace)
    );
    let by = StateBy {
        actor: ACTOR.to_owned(),
        admin: false,
    };
    // Only over the record this sweep judged: not twice across replicas,
    // never over a review, an apply or an admin's suspension since.
    let Some(suspended) = state.store().suspend_unchanged(row, &reason, &by).await? else {
        return Ok(());
    };
    state.changed(bridle_store::Change::Tokens).await;
    let mut event = state.event(EventType::Lifecycle, ACTOR);
    event.agent = Some(suspended.id.to_string());
    event.detail = Some(serde_json::json!({"state": "suspended", "reason": reason}));
    state.audit.append(event).await?;
    state.http.notify(
        "bridle.agent.suspended",
        &format!("agents/{}", suspended.id),
        serde_json::json!({"agent": suspended.id.as_str(), "reason": reason}),
    );
    tracing::warn!(agent = %row.id, %reason, "posture: agent suspended");
    Ok(())
}
