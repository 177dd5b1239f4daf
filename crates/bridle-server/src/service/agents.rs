//! The registry's lifecycle: loading an agent, suspending, resuming,
//! retiring and reviewing it. Who may do it is proved before
//! ([`crate::capability::OwnerOf`]); here the change is made, the token
//! cache dropped and the change audited, as one unit.

use bridle_core::audit::EventType;
use bridle_core::engine::AgentState;
use bridle_core::id::AgentId;
use bridle_store::{AgentRow, PrincipalStore as _, RegistryRead as _, RegistryWrite as _, StateBy};

use super::ServiceError;
use crate::auth::Caller;
use crate::capability::OwnerOf;
use crate::state::AppState;
use crate::views::agent::AgentFlag;

/// The agent `id`; [`ServiceError::NotFound`] when there is none.
pub async fn load(state: &AppState, id: &AgentId) -> Result<AgentRow, ServiceError> {
    state
        .store()
        .agent(id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("agent `{id}` not found")))
}

/// Whether the agent's owner is an active principal (else it is orphaned).
pub async fn owner_active(state: &AppState, row: &AgentRow) -> Result<bool, ServiceError> {
    Ok(state
        .store()
        .principal(&row.owner)
        .await?
        .is_some_and(|p| p.active))
}

/// The flags derived for `row` now: `expired`, `review_overdue`, `orphaned`.
pub async fn flags(state: &AppState, row: &AgentRow) -> Result<Vec<AgentFlag>, ServiceError> {
    let now = jiff::Timestamp::now();
    let mut flags = Vec::new();
    let today = now.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    if row.expires < today {
        flags.push(AgentFlag::Expired);
    }
    if let Some(every) = row.manifest.get("review_every").and_then(|v| v.as_str())
        && let Ok(every) = bridle_core::manifest::units::parse_duration(every)
    {
        let last = row.last_review_at.unwrap_or(row.created_at);
        // A cadence past the end of time is never due (and never panics).
        if last.checked_add(every).is_ok_and(|due| due < now) {
            flags.push(AgentFlag::ReviewOverdue);
        }
    }
    if !owner_active(state, row).await? {
        flags.push(AgentFlag::Orphaned);
    }
    Ok(flags)
}

/// Why `caller` may not lift the suspension of `row`, if it may not: an
/// admin's suspension is lifted only by an admin.
fn lifts_admin_suspension(caller: &Caller, row: &AgentRow, to: AgentState) -> Option<String> {
    let by = row.state_by.as_ref()?;
    if row.state != AgentState::Suspended || to != AgentState::Active || !by.admin {
        return None;
    }
    if caller.is_admin() {
        return None;
    }
    Some(format!(
        "the agent was suspended by an admin ({}: {}); only an admin may resume it",
        by.actor,
        row.state_reason.as_deref().unwrap_or("no reason given"),
    ))
}

/// Move the agent to `to` (suspend, resume, retire) for `reason`.
pub async fn transition(
    state: &AppState,
    owner: &OwnerOf,
    to: AgentState,
    reason: &str,
) -> Result<AgentRow, ServiceError> {
    let OwnerOf {
        caller, agent: row, ..
    } = owner;
    let id = &row.id;
    if row.state == AgentState::Retired {
        return Err(ServiceError::Conflict(format!(
            "agent `{id}` is retired; retirement is final"
        )));
    }
    if let Some(why) = lifts_admin_suspension(caller, row, to) {
        return Err(ServiceError::Refused(why));
    }
    let by = StateBy {
        actor: caller.actor(),
        admin: caller.is_admin(),
    };
    let row = match to {
        AgentState::Retired => state.store().retire(id, reason).await?,
        other => state.store().set_state(id, other, reason, &by).await?,
    };
    state.changed(bridle_store::Change::Tokens).await;
    let mut event = state.event(EventType::Lifecycle, &caller.actor());
    event.agent = Some(row.id.to_string());
    event.detail = Some(serde_json::json!({"state": to.as_str(), "reason": reason}));
    state.posture.about(&event);
    state.audit.append(event).await?;
    Ok(row)
}

/// Record a review of the agent, with an optional comment.
pub async fn review(
    state: &AppState,
    owner: &OwnerOf,
    comment: Option<String>,
) -> Result<AgentRow, ServiceError> {
    let row = state.store().record_review(&owner.agent.id).await?;
    let mut event = state.event(EventType::Lifecycle, &owner.caller.actor());
    event.agent = Some(row.id.to_string());
    event.detail = Some(serde_json::json!({"op": "review", "comment": comment}));
    state.posture.about(&event);
    state.audit.append(event).await?;
    Ok(row)
}
