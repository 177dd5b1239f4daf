//! What-if on history: an agent's recorded decisions since a time decided
//! again against a candidate manifest ([`bridle_core::replay`]), with the
//! other agents of each delegation chain at their versions in force.

use std::collections::HashMap;

use bridle_core::audit::{AuditEvent, EventType};
use bridle_core::id::AgentId;
use bridle_core::replay::ReplayReport;
use bridle_core::{CompiledAgent, Manifest};
use bridle_store::{
    AgentRow, Approval, ApprovalKind, ApprovalState, AuditFilter, AuditRead as _,
    ProposalStore as _, RegistryRead as _, Store,
};
use jiff::Timestamp;

use super::ServiceError;
use crate::state::AppState;

/// How far back a pending change's approval replays the agent's decisions.
pub const CHANGE_WINDOW: &str = "7d";

/// For a pending change approval: the agent, where the replay starts, and
/// its decisions of the last [`CHANGE_WINDOW`] replayed against the proposed
/// manifest. `None` for any other approval, or when the proposal is no
/// longer pending or does not compile.
pub async fn of_change(
    state: &AppState,
    approval: &Approval,
) -> Result<Option<(String, Timestamp, ReplayReport)>, ServiceError> {
    if approval.kind != ApprovalKind::Change || approval.state != ApprovalState::Pending {
        return Ok(None);
    }
    let Some(proposal) = state.store().proposal_for_approval(&approval.id).await? else {
        return Ok(None);
    };
    let Some(row) = state.store().agent(&proposal.agent).await? else {
        return Ok(None);
    };
    let candidate = match candidate(state, &row, proposal.source).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(approval = %approval.id, error = %e, "a proposed change cannot be replayed");
            return Ok(None);
        }
    };
    let since = Timestamp::now() - jiff::SignedDuration::from_hours(7 * 24);
    match replay(state, &row, candidate, since).await {
        Ok(report) => Ok(Some((row.id.to_string(), since, report))),
        // A history too long to replay is not a reason to hide the approval.
        Err(ServiceError::Invalid { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Most decisions one replay reads; a longer history is replayed in
/// narrower windows.
pub const MAX_DECISIONS: usize = 100_000;
const PAGE: u32 = 5_000;

/// Parses and compiles `source` as a candidate for `row`'s agent.
pub async fn candidate(
    state: &AppState,
    row: &AgentRow,
    source: String,
) -> Result<CompiledAgent, ServiceError> {
    let guardrails = state.guardrails.clone();
    let compiled = tokio::task::spawn_blocking(move || {
        let manifest = Manifest::from_source(&source).map_err(ServiceError::Manifest)?;
        CompiledAgent::compile(manifest, &guardrails)
            .map_err(|e| ServiceError::Compile(e.to_string()))
    })
    .await
    .map_err(|e| ServiceError::Task(format!("compiling the candidate failed: {e}")))??;
    if compiled.manifest().agent != row.id {
        return Err(ServiceError::Mismatch(format!(
            "the path names `{}` but the candidate's `agent` is `{}`",
            row.id,
            compiled.manifest().agent
        )));
    }
    Ok(compiled)
}

/// Replays `row`'s decisions from `since` on against `candidate`.
pub async fn replay(
    state: &AppState,
    row: &AgentRow,
    candidate: CompiledAgent,
    since: Timestamp,
) -> Result<ReplayReport, ServiceError> {
    let events = decisions(state.store(), &row.id, since).await?;
    let mut others = HashMap::new();
    for other in chain_agents(state.store(), &row.id, &events).await? {
        others.insert(other.id.to_string(), state.compiled(&other).await?);
    }
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        bridle_core::replay::replay(&state.engine, &candidate, &others, &events)
    })
    .await
    .map_err(|e| ServiceError::Task(format!("the replay failed: {e}")))
}

/// The agent's decision records from `since` on, in order (at most
/// [`MAX_DECISIONS`]).
pub async fn decisions(
    store: &Store,
    agent: &AgentId,
    since: Timestamp,
) -> Result<Vec<AuditEvent>, ServiceError> {
    let mut events: Vec<AuditEvent> = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .audit_events(&AuditFilter {
                agent: Some(agent.clone()),
                kind: Some(EventType::Decision),
                after_seq: after,
                since: Some(since),
                limit: PAGE,
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        let full = page.len() == PAGE as usize;
        events.extend(page);
        if events.len() > MAX_DECISIONS {
            return Err(ServiceError::invalid(
                "too many decisions to replay",
                "since",
                format!("more than {MAX_DECISIONS} decisions in the window: replay a shorter one"),
            ));
        }
        if !full {
            break;
        }
    }
    Ok(events)
}

/// The records of the other agents the decisions came through (those
/// still in the registry).
pub async fn chain_agents(
    store: &Store,
    me: &AgentId,
    events: &[AuditEvent],
) -> Result<Vec<AgentRow>, ServiceError> {
    let mut ids: Vec<AgentId> = events
        .iter()
        .filter_map(|e| e.body.detail.as_ref()?.get("chain")?.as_array())
        .flatten()
        .filter_map(|v| v.as_str()?.parse::<AgentId>().ok())
        .filter(|id| id != me)
        .collect();
    ids.sort();
    ids.dedup();
    let mut rows = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(row) = store.agent(&id).await? {
            rows.push(row);
        }
    }
    Ok(rows)
}
