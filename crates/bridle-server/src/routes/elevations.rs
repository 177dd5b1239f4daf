//! `POST /v1/agents/{id}/elevations`: just-in-time extra scope, granted at
//! once when `auto_grant_when` holds, otherwise on approval; never longer
//! than `max_duration`; ended automatically. `GET` lists an agent's
//! elevations (whoever may read the agent; an agent only with its own
//! token); `POST …/{elevation_id}/end` ends one early (an admin, the
//! owner, or the agent itself).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bridle_core::id::AgentId;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::capability::SelfOrOwner;
use crate::error::ApiError;
use crate::json::StrictJson;
use crate::openapi as doc;
use crate::state::AppState;
use crate::views::elevation::{ElevationCreated, ElevationList, ElevationView};

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
    who: Result<SelfOrOwner, ApiError>,
    body: Result<StrictJson<ElevationRequest>, ApiError>,
) -> Result<(StatusCode, Json<ElevationCreated>), ApiError> {
    let StrictJson(body) = body?;
    let who = who?;
    let ask = crate::service::elevation::Request {
        name: &body.name,
        duration: &body.duration,
        reason: &body.reason,
    };
    let elevation = crate::service::elevation::request(&state, &who, ask).await?;
    Ok((StatusCode::CREATED, Json(elevation.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only the elevations active now.
    active: Option<bool>,
}

/// A path that could not be read (a capture that is not UTF-8): 400.
fn path_error(e: PathRejection) -> ApiError {
    ApiError::BadRequest(e.body_text())
}

/// The agent `id` if `caller` may read its elevations: as every read of an
/// agent (`access::agent`), and an agent only with its own token (a
/// delegated one speaks for its delegator in decisions alone). 404 alike
/// for an unknown agent and one the caller may not see.
async fn visible(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<bridle_store::AgentRow, ApiError> {
    let not_found = || ApiError::NotFound(format!("agent `{id}` not found"));
    let id: AgentId = id.parse().map_err(|_| not_found())?;
    if let Caller::Agent(a) = caller
        && !a.is_own(id.as_str())
    {
        return Err(not_found());
    }
    crate::access::agent(state, caller, &id).await
}

/// The agent's elevations, oldest first, with their state (`pending`,
/// `active`, `ended`, `denied`, `expired`).
#[utoipa::path(
    get,
    path = "/v1/agents/{id}/elevations",
    tag = "elevations",
    operation_id = "list_elevations",
    params(("id" = String, Path, description = "The agent's id"), ListQuery),
    responses(
        (status = 200, description = "The agent's elevations", body = ElevationList),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ElevationList>, ApiError> {
    let Path(id) = id.map_err(path_error)?;
    let Query(q) = q.map_err(super::query_error)?;
    let row = visible(&state, &caller, &id).await?;
    let list = crate::service::elevation::list(&state, &row, q.active.unwrap_or(false)).await?;
    Ok(Json(ElevationList {
        elevations: list.into_iter().map(ElevationView::from).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndRequest {
    /// Why it ends early; must not be blank.
    reason: String,
}

/// End a pending or active elevation now (an admin, the agent's owner, or
/// the agent itself with its own token). A pending one's approval is
/// withdrawn. One already ended, denied or expired is 409.
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/elevations/{elevation_id}/end",
    tag = "elevations",
    operation_id = "end_elevation",
    params(
        ("id" = String, Path, description = "The agent's id"),
        ("elevation_id" = String, Path, description = "The elevation's id"),
    ),
    request_body = EndRequest,
    responses(
        (status = 200, description = "Ended", body = ElevationView),
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
pub async fn end(
    State(state): State<AppState>,
    caller: Caller,
    ids: Result<Path<(String, String)>, PathRejection>,
    body: Result<StrictJson<EndRequest>, ApiError>,
) -> Result<Json<ElevationView>, ApiError> {
    let Path((id, elevation_id)) = ids.map_err(path_error)?;
    // Who may not see the agent learns nothing, not even of its body.
    let row = visible(&state, &caller, &id).await?;
    let StrictJson(body) = body?;
    let ended =
        crate::service::elevation::end(&state, &caller, &row, &elevation_id, &body.reason).await?;
    Ok(Json(ended.into()))
}
