//! `/v1/agents/{id}/versions` and `/diff`: the history of an agent's
//! record — every version as submitted, who submitted it, what it changed.
//! Readable by whoever may read the agent (admin, auditor, its owner, the
//! agent itself); 404 for anyone else.

use axum::Json;
use axum::extract::{Path, Query, State};
use bridle_core::id::AgentId;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi as doc;
use crate::path::{IdPath, IdRejection};
use crate::service::manifest;
use crate::state::AppState;
use crate::views::history::{DiffView, VersionDetail, VersionList};

/// Every version of the agent's manifest, oldest first, with what each
/// changed against the one before it.
#[utoipa::path(
    get,
    path = "/v1/agents/{id}/versions",
    tag = "agents",
    operation_id = "list_agent_versions",
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "The versions", body = VersionList),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<AgentId>,
) -> Result<Json<VersionList>, ApiError> {
    let row = crate::access::agent(&state, &caller, &id).await?;
    let versions = manifest::history(&state, &row).await?;
    Ok(Json(VersionList {
        versions: versions.into_iter().map(Into::into).collect(),
    }))
}

/// One version: its manifest text exactly as submitted, and what it changed.
#[utoipa::path(
    get,
    path = "/v1/agents/{id}/versions/{version}",
    tag = "agents",
    operation_id = "show_agent_version",
    params(
        ("id" = String, Path, description = "The agent's id"),
        ("version" = i64, Path, description = "The version number"),
    ),
    responses(
        (status = 200, description = "The version", body = VersionDetail),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn version(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<AgentId>,
    Path((_agent, version)): Path<(String, String)>,
) -> Result<Json<VersionDetail>, ApiError> {
    let row = crate::access::agent(&state, &caller, &id).await?;
    let wanted: i64 = version
        .parse()
        .map_err(|_| ApiError::malformed("invalid version", "version", "a version number"))?;
    manifest::history(&state, &row)
        .await?
        .into_iter()
        .find(|v| v.version == wanted)
        .map(|v| Json(v.into()))
        .ok_or_else(|| ApiError::NotFound(format!("version {wanted} of `{id}` not found")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The earlier version (default: the one before `to`; 0 compares with
    /// nothing, as for a new agent).
    from: Option<i64>,
    /// The later version (default: the version in force).
    to: Option<i64>,
}

/// Two versions compared: a unified diff of the manifest texts and the
/// classified changes.
#[utoipa::path(
    get,
    path = "/v1/agents/{id}/diff",
    tag = "agents",
    operation_id = "diff_agent_versions",
    params(("id" = String, Path, description = "The agent's id"), DiffQuery),
    responses(
        (status = 200, description = "The diff", body = DiffView),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<IdPath<AgentId>, IdRejection>,
    q: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DiffView>, ApiError> {
    let Query(q) = q.map_err(super::query_error)?;
    let IdPath(id) = id?;
    let row = crate::access::agent(&state, &caller, &id).await?;
    let diff = manifest::diff(&state, &row, q.from, q.to).await?;
    Ok(Json(diff.into()))
}
