//! `/v1/agents`: the registry — apply, list, show, lifecycle, review.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use bridle_core::engine::AgentState;
use bridle_core::id::AgentId;
use bridle_core::manifest::limits::MAX_MANIFEST_BYTES;
use bridle_store::AgentRow;

use crate::service::manifest;
use crate::views::history::{Applied, ApplyAnswer, Proposed};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::capability::OwnerOf;
use crate::error::ApiError;
use crate::json::StrictJson;
use crate::openapi as doc;
use crate::path::{IdPath, IdRejection};
use crate::state::AppState;
use crate::views::agent::{AgentFlag, AgentList, AgentRecord};

/// The flags of `row` now ([`crate::service::agents::flags`]).
pub async fn flags(state: &AppState, row: &AgentRow) -> Result<Vec<AgentFlag>, ApiError> {
    Ok(crate::service::agents::flags(state, row).await?)
}

/// The agent record of the API contract, with derived flags.
pub async fn record(state: &AppState, row: AgentRow) -> Result<AgentRecord, ApiError> {
    let flags = flags(state, &row).await?;
    Ok(AgentRecord::new(row, flags))
}

/// Create or update an agent from its manifest (admin, or the agent's owner).
#[utoipa::path(
    put,
    path = "/v1/agents/{id}",
    tag = "agents",
    operation_id = "apply_agent",
    params(("id" = String, Path, description = "The agent's id; must equal the manifest's `agent`", example = "procurement-bot")),
    request_body(
        content(
            (Object = "application/yaml", example = doc::manifest_example),
            (Object = "application/json", example = doc::manifest_example),
        ),
        description = "The manifest, as YAML or JSON text",
    ),
    responses(
        (status = 200, description = "Updated: the record and what the manifest changed", body = Applied),
        (status = 201, description = "Created: the record and what it grants", body = Applied),
        (status = 202, description = "Proposed under change control: waits for a second person's approval", body = Proposed),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<IdPath<AgentId>, IdRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<ApplyAnswer>), ApiError> {
    caller.require_principal()?;
    // An id that cannot be one is a bad request here (it would name the
    // agent to create), not an unknown agent.
    let id = match id {
        Ok(IdPath(id)) => id,
        Err(IdRejection::Invalid { raw, reason, .. }) => {
            return Err(ApiError::BadRequest(format!(
                "`{raw}` is not an agent id: {reason}"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    // Everything that does not need the body is decided before the body
    // is read as a manifest: a caller who may not apply learns nothing and
    // costs nothing.
    let existing = manifest::authorize(&state, &caller, &id).await?;
    let source = manifest_text(body)?;
    match manifest::apply(&state, &caller, &id, existing, source).await? {
        manifest::Outcome::Applied(applied) => {
            let status = if applied.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let record = record(&state, applied.row).await?;
            Ok((
                status,
                Json(ApplyAnswer::Applied(Applied::new(
                    record,
                    applied.changes,
                    applied.warnings,
                ))),
            ))
        }
        manifest::Outcome::Proposed(proposed) => Ok((
            StatusCode::ACCEPTED,
            Json(ApplyAnswer::Proposed((*proposed).into())),
        )),
    }
}

/// The agents the caller may see: every agent for `admin` and `auditor`,
/// the agents it owns for any other principal.
#[utoipa::path(
    get,
    path = "/v1/agents",
    tag = "agents",
    operation_id = "list_agents",
    responses(
        (status = 200, description = "The agents", body = AgentList),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<AgentList>, ApiError> {
    let p = caller.require_principal()?;
    let mut agents = Vec::new();
    for row in crate::access::agents(&state, p).await? {
        agents.push(record(&state, row).await?);
    }
    Ok(Json(AgentList { agents }))
}

/// One agent's record (`admin`, `auditor`, its owner, or the agent itself;
/// 404 for anyone else).
#[utoipa::path(
    get,
    path = "/v1/agents/{id}",
    tag = "agents",
    operation_id = "show_agent",
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "The agent record", body = AgentRecord),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<AgentId>,
) -> Result<Json<AgentRecord>, ApiError> {
    let row = crate::access::agent(&state, &caller, &id).await?;
    Ok(Json(record(&state, row).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = LifecycleRequest)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// Why; must not be blank.
    #[schema(min_length = 1)]
    reason: String,
}

async fn transition(
    state: &AppState,
    owner: Result<OwnerOf, ApiError>,
    body: Result<StrictJson<Reason>, ApiError>,
    to: AgentState,
) -> Result<Json<AgentRecord>, ApiError> {
    let StrictJson(body) = body?;
    if body.reason.trim().is_empty() {
        return Err(ApiError::invalid(
            "a reason is required",
            "reason",
            "must not be empty",
        ));
    }
    let owner = owner?;
    let row = crate::service::agents::transition(state, &owner, to, &body.reason).await?;
    Ok(Json(record(state, row).await?))
}

/// Suspend an agent: its decisions are denied and it gets no tokens (admin or owner).
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/suspend",
    tag = "agents",
    operation_id = "suspend_agent",
    params(("id" = String, Path, description = "The agent's id")),
    request_body = Reason,
    responses(
        (status = 200, description = "The agent record", body = AgentRecord),
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
pub async fn suspend(
    State(state): State<AppState>,
    owner: Result<OwnerOf, ApiError>,
    body: Result<StrictJson<Reason>, ApiError>,
) -> Result<Json<AgentRecord>, ApiError> {
    transition(&state, owner, body, AgentState::Suspended).await
}

/// Resume a suspended agent (admin or owner).
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/resume",
    tag = "agents",
    operation_id = "resume_agent",
    params(("id" = String, Path, description = "The agent's id")),
    request_body = Reason,
    responses(
        (status = 200, description = "The agent record", body = AgentRecord),
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
pub async fn resume(
    State(state): State<AppState>,
    owner: Result<OwnerOf, ApiError>,
    body: Result<StrictJson<Reason>, ApiError>,
) -> Result<Json<AgentRecord>, ApiError> {
    transition(&state, owner, body, AgentState::Active).await
}

/// Retire an agent, finally: revokes its credentials and tokens, cancels its pending approvals and ends its elevations (admin or owner).
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/retire",
    tag = "agents",
    operation_id = "retire_agent",
    params(("id" = String, Path, description = "The agent's id")),
    request_body = Reason,
    responses(
        (status = 200, description = "The agent record", body = AgentRecord),
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
pub async fn retire(
    State(state): State<AppState>,
    owner: Result<OwnerOf, ApiError>,
    body: Result<StrictJson<Reason>, ApiError>,
) -> Result<Json<AgentRecord>, ApiError> {
    transition(&state, owner, body, AgentState::Retired).await
}

#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    comment: Option<String>,
}

/// Record an access review of the agent now (admin or owner).
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/review",
    tag = "agents",
    operation_id = "review_agent",
    params(("id" = String, Path, description = "The agent's id")),
    request_body = Option<Review>,
    responses(
        (status = 200, description = "The agent record", body = AgentRecord),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn review(
    State(state): State<AppState>,
    owner: Result<OwnerOf, ApiError>,
    body: Result<Option<StrictJson<Review>>, ApiError>,
) -> Result<Json<AgentRecord>, ApiError> {
    let body = body?;
    let owner = owner?;
    let comment = body.and_then(|b| b.0.comment);
    let row = crate::service::agents::review(&state, &owner, comment).await?;
    Ok(Json(record(&state, row).await?))
}

/// A request body that is a manifest: UTF-8 text within the manifest size
/// bound (413 past it), as `PUT /v1/agents/{id}` and a replay take it.
pub(crate) fn manifest_text(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<String, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })?;
    if body.len() > MAX_MANIFEST_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8 text".into()))
}
