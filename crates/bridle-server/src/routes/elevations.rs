//! `POST /v1/agents/{id}/elevations`: just-in-time extra scope, granted at
//! once when `auto_grant_when` holds, otherwise on approval; never longer
//! than `max_duration`; ended automatically.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bridle_core::audit::EventType;
use bridle_core::engine::AgentState;
use bridle_core::id::AgentId;
use bridle_core::manifest::units::parse_duration;
use bridle_store::{
    ApprovalKind, ApprovalStore, Elevation, ElevationState, ElevationStore, NewApproval,
};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::StrictJson;
use crate::openapi as doc;
use crate::path::{IdPath, IdRejection};
use crate::state::AppState;
use crate::tokens::new_id;
use crate::views::approval::Approval;
use crate::views::elevation::ElevationCreated;

/// How long an elevation request waits for a human.
const ELEVATION_APPROVAL_TTL: SignedDuration = SignedDuration::from_hours(24);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ElevationRequest {
    /// One of the manifest's `elevation` names.
    name: String,
    /// How long, e.g. `30m`; at most the elevation's `max_duration`.
    #[schema(example = "30m")]
    duration: String,
    /// Why; must not be blank.
    reason: String,
}

/// Request an elevation (the agent's own token, or its owner).
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/elevations",
    tag = "elevations",
    operation_id = "request_elevation",
    params(("id" = String, Path, description = "The agent's id")),
    request_body = ElevationRequest,
    responses(
        (status = 201, description = "Requested (pending approval) or granted", body = ElevationCreated,
            links(("approval" = (operation_id = "show_approval", parameters(("id" = "$response.body#/approval_id")))))),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn request(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<IdPath<AgentId>, IdRejection>,
    body: Result<StrictJson<ElevationRequest>, ApiError>,
) -> Result<(StatusCode, Json<ElevationCreated>), ApiError> {
    let StrictJson(body) = body?;
    let IdPath(id) = id?;
    let row = super::agents::load(&state, &id).await?;
    // A delegated token speaks for its delegator only in decisions.
    let own_token = matches!(&caller, Caller::Agent(a) if a.is_own(row.id.as_str()));
    let owner = caller.principal().is_some_and(|p| p.id == row.owner);
    if !own_token && !owner {
        return Err(ApiError::Forbidden(
            "an elevation is requested by the agent itself or its owner".into(),
        ));
    }
    if row.state != AgentState::Active {
        return Err(ApiError::Conflict(format!(
            "agent `{id}` is {}",
            row.state.as_str()
        )));
    }
    let compiled = state.compiled(&row).await?;
    let Some(spec) = compiled
        .manifest()
        .elevation
        .iter()
        .find(|e| e.name == body.name)
    else {
        return Err(ApiError::invalid(
            "unknown elevation",
            "name",
            format!("`{}` is not an elevation of `{id}`", body.name),
        ));
    };
    let duration = parse_duration(&body.duration)
        .map_err(|e| ApiError::invalid("invalid duration", "duration", e.to_string()))?;
    if duration > spec.max_duration {
        return Err(ApiError::invalid(
            "duration too long",
            "duration",
            format!(
                "at most {} for `{}`",
                bridle_core::manifest::units::format_duration(spec.max_duration),
                spec.name
            ),
        ));
    }
    if body.reason.trim().is_empty() {
        return Err(ApiError::invalid(
            "a reason is required",
            "reason",
            "must not be empty",
        ));
    }
    let now = Timestamp::now();
    let auto = state
        .engine
        .auto_grant(&compiled, &spec.name, &body.reason, duration, now);
    let mut elevation = Elevation {
        id: new_id("elv_", 12).map_err(|e| ApiError::Internal(e.to_string()))?,
        agent: row.id.clone(),
        name: spec.name.clone(),
        reason: body.reason.clone(),
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
    if !auto {
        let approval = NewApproval {
            id: new_id("apr_", 12).map_err(|e| ApiError::Internal(e.to_string()))?,
            kind: ApprovalKind::Elevation,
            agent: row.id.clone(),
            key: format!("elevation:{}", elevation.id),
            action: format!("elevation:{}", spec.name),
            args: serde_json::json!({"duration": body.duration, "reason": body.reason}),
            resource: None,
            approvers: spec.approvers.iter().map(ToString::to_string).collect(),
            min_approvals: 1,
            allow_owner: false,
            owner: row.owner.clone(),
            elevation_id: Some(elevation.id.clone()),
            expires_at: now + ELEVATION_APPROVAL_TTL,
        };
        elevation.approval_id = Some(approval.id.clone());
        state.store.create_elevation(&elevation).await?;
        let (created, _) = state.store.create_approval(&approval).await?;
        let created = Approval::from(created);
        state.http.notify(
            "dev.bridle.approval.requested",
            &created.id,
            serde_json::to_value(&created).unwrap_or_default(),
        );
    } else {
        state.store.create_elevation(&elevation).await?;
    }
    let mut event = state.event(EventType::Elevation, &caller.actor());
    event.agent = Some(row.id.to_string());
    event.detail = Some(serde_json::json!({
        "op": "request", "elevation_id": elevation.id, "name": elevation.name, "state": elevation.state.as_str(),
        "reason": elevation.reason, "duration_secs": elevation.duration_secs, "auto_granted": auto,
        "approval_id": elevation.approval_id,
    }));
    state.audit(event).await?;
    Ok((StatusCode::CREATED, Json(elevation.into())))
}
