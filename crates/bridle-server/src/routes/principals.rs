//! `/v1/principals`: humans and service principals (admin only).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bridle_core::id::{GroupName, PrincipalId};
use bridle_store::NewPrincipal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::capability::Admin;
use crate::error::ApiError;
use crate::json::StrictJson;
use crate::openapi as doc;
use crate::path::IdPath;
use crate::service::principals;
use crate::state::AppState;
use crate::views::principal::Role;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePrincipal {
    #[schema(example = "alice")]
    id: String,
    /// Display name; defaults to the id.
    name: Option<String>,
    #[serde(default)]
    roles: Vec<Role>,
    /// Approver groups.
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PrincipalCreated {
    #[schema(value_type = String)]
    id: PrincipalId,
    /// The principal's API key, shown once (only its hash is stored).
    api_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PrincipalDeactivated {
    #[schema(value_type = String)]
    id: PrincipalId,
    active: bool,
    /// The agents this principal owns, now flagged `orphaned`.
    orphaned_agents: Vec<String>,
}

/// Create a principal (admin).
#[utoipa::path(
    post,
    path = "/v1/principals",
    tag = "principals",
    operation_id = "create_principal",
    request_body = CreatePrincipal,
    responses(
        (status = 201, description = "Created", body = PrincipalCreated),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    body: Result<StrictJson<CreatePrincipal>, ApiError>,
) -> Result<(StatusCode, Json<PrincipalCreated>), ApiError> {
    let StrictJson(body) = body?;
    let id: PrincipalId = body.id.parse().map_err(|e: bridle_core::id::IdError| {
        ApiError::invalid("invalid principal", "id", e.to_string())
    })?;
    let mut groups = Vec::new();
    for (i, g) in body.groups.iter().enumerate() {
        groups.push(g.parse::<GroupName>().map_err(|e| {
            ApiError::invalid("invalid principal", &format!("groups[{i}]"), e.to_string())
        })?);
    }
    let p = NewPrincipal {
        name: body.name.unwrap_or_else(|| id.to_string()),
        id,
        roles: body.roles.into_iter().map(Into::into).collect(),
        groups,
    };
    let (created, api_key) = principals::create(&state, &admin, &p).await?;
    Ok((
        StatusCode::CREATED,
        Json(PrincipalCreated {
            id: created.id,
            api_key,
        }),
    ))
}

/// Deactivate a principal (admin): its API keys stop working and the agents
/// it owns become `orphaned`.
#[utoipa::path(
    post,
    path = "/v1/principals/{id}/deactivate",
    tag = "principals",
    operation_id = "deactivate_principal",
    params(("id" = String, Path, description = "The principal's id")),
    responses(
        (status = 200, description = "Deactivated", body = PrincipalDeactivated),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn deactivate(
    State(state): State<AppState>,
    admin: Admin,
    IdPath(id): IdPath<PrincipalId>,
) -> Result<Json<PrincipalDeactivated>, ApiError> {
    let (p, orphaned) = principals::deactivate(&state, &admin, &id).await?;
    Ok(Json(PrincipalDeactivated {
        id: p.id,
        active: p.active,
        orphaned_agents: orphaned.into_iter().map(|a| a.to_string()).collect(),
    }))
}
