//! Just-in-time elevation: a request is checked against the manifest's
//! `elevation` entry, granted at once when `auto_grant_when` holds,
//! otherwise put to its approvers; never longer than `max_duration`.
//! Who may ask is proved before ([`crate::capability::SelfOrOwner`]).
//!
//! An elevation is listed (`list`) and ended early (`end`) through the
//! store, which is the truth on every replica: nothing caches elevations
//! (each decision reads the agent's active ones from the store), so the
//! decision right after an end no longer sees it on any replica.

use bridle_core::audit::EventType;
use bridle_core::engine::AgentState;
use bridle_core::id::ElevationId;
use bridle_core::manifest::units::{format_duration, parse_duration};
use bridle_store::{
    AgentRow, ApprovalKind, ApprovalStore as _, Elevation, ElevationState, ElevationStore as _,
    EndElevation, NewApproval,
};
use jiff::{SignedDuration, Timestamp};

use super::ServiceError;
use crate::auth::Caller;
use crate::capability::SelfOrOwner;
use crate::state::AppState;
use crate::tokens::new_id;

/// How long an elevation request waits for a human.
const ELEVATION_APPROVAL_TTL: SignedDuration = SignedDuration::from_hours(24);

/// What is asked: an elevation of the manifest by name, for how long, why.
#[derive(Debug)]
pub struct Request<'a> {
    pub name: &'a str,
    pub duration: &'a str,
    pub reason: &'a str,
}

/// Request an elevation for the agent `who` names.
pub async fn request(
    state: &AppState,
    who: &SelfOrOwner,
    ask: Request<'_>,
) -> Result<Elevation, ServiceError> {
    let SelfOrOwner { caller, agent: row } = who;
    let id = &row.id;
    if row.state != AgentState::Active {
        return Err(ServiceError::Conflict(format!(
            "agent `{id}` is {}",
            row.state.as_str()
        )));
    }
    let compiled = state.compiled(row).await?;
    let Some(spec) = compiled
        .manifest()
        .elevation
        .iter()
        .find(|e| e.name == ask.name)
    else {
        return Err(ServiceError::invalid(
            "unknown elevation",
            "name",
            format!("`{}` is not an elevation of `{id}`", ask.name),
        ));
    };
    let duration = parse_duration(ask.duration)
        .map_err(|e| ServiceError::invalid("invalid duration", "duration", e.to_string()))?;
    if duration > spec.max_duration {
        return Err(ServiceError::invalid(
            "duration too long",
            "duration",
            format!(
                "at most {} for `{}`",
                format_duration(spec.max_duration),
                spec.name
            ),
        ));
    }
    if ask.reason.trim().is_empty() {
        return Err(ServiceError::invalid(
            "a reason is required",
            "reason",
            "must not be empty",
        ));
    }
    let now = Timestamp::now();
    let auto = state
        .engine
        .auto_grant(&compiled, &spec.name, ask.reason, duration, now);
    let mut elevation = Elevation {
        id: new_id("elv_", 12)?,
        agent: row.id.clone(),
        name: spec.name.clone(),
        reason: ask.reason.to_owned(),
        duration_secs: duration.as_secs(),
        state: if auto {
            ElevationState::Active
        } else {
            ElevationState::Pending
        },
        approval_id: None,
        requested_by: caller.actor(),
        created_at: now,
        expires_at: auto.then(|| now + duration),
        ended_at: None,
        ended_by: None,
        end_reason: None,
    };
    if auto {
        state.store().create_elevation(&elevation).await?;
    } else {
        let approval = NewApproval {
            id: new_id("apr_", 12)?,
            kind: ApprovalKind::Elevation,
            agent: row.id.clone(),
            key: format!("elevation:{}", elevation.id),
            action: format!("elevation:{}", spec.name),
            args: serde_json::json!({"duration": ask.duration, "reason": ask.reason}),
            resource: None,
            approvers: spec.approvers.iter().map(ToString::to_string).collect(),
            min_approvals: 1,
            allow_owner: false,
            owner: row.owner.clone(),
            elevation_id: Some(elevation.id.clone()),
            expires_at: now + ELEVATION_APPROVAL_TTL,
        };
        elevation.approval_id = Some(approval.id.clone());
        state.store().create_elevation(&elevation).await?;
        let (created, _) = state.store().create_approval(&approval).await?;
        let created = crate::views::approval::Approval::from(created);
        state.http.notify(
            "dev.bridle.approval.requested",
            &created.id,
            serde_json::to_value(&created).unwrap_or_default(),
        );
    }
    let mut event = state.event(EventType::Elevation, &caller.actor());
    event.agent = Some(row.id.to_string());
    event.detail = Some(serde_json::json!({
        "op": "request", "elevation_id": elevation.id, "name": elevation.name, "state": elevation.state.as_str(),
        "reason": elevation.reason, "duration_secs": elevation.duration_secs, "auto_granted": auto,
        "approval_id": elevation.approval_id,
    }));
    state.audit.append(event).await?;
    Ok(elevation)
}

/// The elevations of `row` (whose visibility the caller proved), oldest
/// first; with `active_only` only those active now.
pub async fn list(
    state: &AppState,
    row: &AgentRow,
    active_only: bool,
) -> Result<Vec<Elevation>, ServiceError> {
    Ok(state
        .store()
        .elevations(&row.id, active_only, Timestamp::now())
        .await?)
}

/// Whether `caller` may end the elevations of `row`: an admin, its owner,
/// or the agent itself with its own (not a delegated) token.
fn may_end(caller: &Caller, row: &AgentRow) -> bool {
    caller.manages(row) || matches!(caller, Caller::Agent(a) if a.is_own(row.id.as_str()))
}

/// End the elevation `id` of `row` now, for `reason`. The caller can see
/// `row` (proved before); here it must also be allowed to end it. A
/// pending elevation's approval is withdrawn, so nobody can approve it
/// any more. Of concurrent ends (on any replica) exactly one succeeds; the
/// others, and an end of one no longer open, are a conflict.
pub async fn end(
    state: &AppState,
    caller: &Caller,
    row: &AgentRow,
    id: &str,
    reason: &str,
) -> Result<Elevation, ServiceError> {
    if !may_end(caller, row) {
        return Err(ServiceError::Refused(format!(
            "an elevation of `{}` is ended by the agent itself, its owner or an admin",
            row.id
        )));
    }
    if reason.trim().is_empty() {
        return Err(ServiceError::invalid(
            "a reason is required",
            "reason",
            "must not be empty",
        ));
    }
    let not_found = || ServiceError::NotFound(format!("elevation `{id}` not found"));
    let eid: ElevationId = id.parse().map_err(|_| not_found())?;
    let before = state
        .store()
        .elevation(&eid)
        .await?
        .filter(|e| e.agent == row.id)
        .ok_or_else(not_found)?;
    let conflict =
        |s: ElevationState| ServiceError::Conflict(format!("elevation `{eid}` is {}", s.as_str()));
    if !before.state.is_open() {
        return Err(conflict(before.state));
    }
    let now = Timestamp::now();
    let actor = caller.actor();
    let end = EndElevation {
        by: &actor,
        reason,
        at: now,
    };
    let Some(ended) = state.store().end_elevation(&eid, end).await? else {
        // Another replica ended it, it expired or a vote decided it meanwhile.
        let current = state.store().elevation(&eid).await?.ok_or_else(not_found)?;
        return Err(conflict(current.state));
    };
    let withdrawn = if before.state == ElevationState::Pending
        && let Some(approval) = &ended.approval_id
    {
        state.store().withdraw_approval(approval, now).await?;
        state.changed(bridle_store::Change::Approval).await;
        Some(approval.clone())
    } else {
        None
    };
    let mut event = state.event(EventType::Elevation, &actor);
    event.agent = Some(row.id.to_string());
    event.detail = Some(serde_json::json!({
        "op": "end", "elevation_id": ended.id, "name": ended.name, "was": before.state.as_str(),
        "reason": reason, "approval_id": ended.approval_id, "approval_withdrawn": withdrawn.is_some(),
    }));
    state.audit.append(event).await?;
    Ok(ended)
}
