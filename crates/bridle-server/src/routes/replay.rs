//! `POST /v1/agents/{id}/replay`: every recorded decision of a window
//! decided again against a candidate manifest. Changes nothing; open to
//! whoever may read the agent (404 for anyone else).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use bridle_core::id::AgentId;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi as doc;
use crate::path::{IdPath, IdRejection};
use crate::service::replay;
use crate::state::AppState;
use crate::views::replay::ReplayView;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SinceQuery {
    /// How far back (`7d`, `24h`; default `7d`, at most `400d`).
    since: Option<String>,
}

/// What the candidate manifest in the body would have decided differently
/// among the agent's recorded decisions since `since`: each changed
/// decision, and the changes counted by kind.
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/replay",
    tag = "agents",
    operation_id = "replay_agent",
    params(("id" = String, Path, description = "The agent's id"), SinceQuery),
    request_body(
        content(
            (Object = "application/yaml", example = doc::manifest_example),
            (Object = "application/json", example = doc::manifest_example),
        ),
        description = "The candidate manifest, as YAML or JSON text",
    ),
    responses(
        (status = 200, description = "The replay", body = ReplayView),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<IdPath<AgentId>, IdRejection>,
    q: Result<Query<SinceQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<ReplayView>, ApiError> {
    let Query(q) = q.map_err(super::query_error)?;
    let IdPath(id) = id?;
    let (text, window) = super::usage::window(Some(q.since.as_deref().unwrap_or("7d")), "since")?;
    let row = crate::access::agent(&state, &caller, &id).await?;
    let source = super::agents::manifest_text(body)?;
    let candidate = replay::candidate(&state, &row, source).await?;
    let now = jiff::Timestamp::now();
    let since = now.checked_sub(window).unwrap_or(jiff::Timestamp::MIN);
    let report = replay::replay(&state, &row, candidate, since).await?;
    Ok(Json(ReplayView::new(id.to_string(), text, since, report)))
}
