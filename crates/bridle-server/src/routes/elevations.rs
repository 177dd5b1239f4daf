//! `POST /v1/agents/{id}/elevations`: just-in-time extra scope, granted at
//! once when `auto_grant_when` holds, otherwise on approval; never longer
//! than `max_duration`; ended automatically.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::capability::SelfOrOwner;
use crate::error::ApiError;
use crate::json::StrictJson;
use crate::openapi as doc;
use crate::state::AppState;
use crate::views::elevation::ElevationCreated;

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
