//! Just-in-time elevation: a request is checked against the manifest's
//! `elevation` entry, granted at once when `auto_grant_when` holds,
//! otherwise put to its approvers; never longer than `max_duration`.
//! Who may ask is proved before ([`crate::capability::SelfOrOwner`]).

use bridle_core::audit::EventType;
use bridle_core::engine::AgentState;
use bridle_core::manifest::units::{format_duration, parse_duration};
use bridle_store::{
    ApprovalKind, ApprovalStore as _, Elevation, ElevationState, ElevationStore as _, NewApproval,
};
use jiff::{SignedDuration, Timestamp};

use super::ServiceError;
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
