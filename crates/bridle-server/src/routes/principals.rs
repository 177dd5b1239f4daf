//! `/v1/principals`: humans and service principals (admin only).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bridle_core::audit::EventType;
use bridle_core::id::{GroupName, PrincipalId};
use bridle_store::{NewPrincipal, PrincipalStore, RegistryRead, Role};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::{hash_secret, random_token};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePrincipal {
    id: String,
    name: Option<String>,
    #[serde(default)]
    roles: Vec<Role>,
    #[serde(default)]
    groups: Vec<String>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<CreatePrincipal>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    caller.require_admin()?;
    let Json(body) = body.map_err(super::json_error)?;
    let id: PrincipalId = body.id.parse().map_err(|e: bridle_core::id::IdError| {
        ApiError::invalid("invalid principal", "id", e.to_string())
    })?;
    let mut groups = Vec::new();
    for (i, g) in body.groups.iter().enumerate() {
        groups.push(g.parse::<GroupName>().map_err(|e| {
            ApiError::invalid("invalid principal", &format!("groups[{i}]"), e.to_string())
        })?);
    }
    let api_key = format!("bk_{}", random_token(32));
    let p = NewPrincipal {
        name: body.name.unwrap_or_else(|| id.to_string()),
        id,
        roles: body.roles,
        groups,
    };
    let created = state
        .store
        .create_principal(&p, &hash_secret(&api_key))
        .await?;
    let mut event = state.event(EventType::Principal, &caller.actor());
    event.detail = Some(
        serde_json::json!({"op": "create", "principal": created.id, "roles": created.roles, "groups": created.groups}),
    );
    state.audit(event).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": created.id, "api_key": api_key })),
    ))
}

pub async fn deactivate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_admin()?;
    let id: PrincipalId = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("principal `{id}` not found")))?;
    let p = state.store.deactivate_principal(&id).await?;
    let orphaned: Vec<String> = state
        .store
        .agents()
        .await?
        .into_iter()
        .filter(|a| a.owner == id)
        .map(|a| a.id.to_string())
        .collect();
    let mut event = state.event(EventType::Principal, &caller.actor());
    event.detail = Some(
        serde_json::json!({"op": "deactivate", "principal": p.id, "orphaned_agents": orphaned}),
    );
    state.audit(event).await?;
    Ok(Json(
        serde_json::json!({ "id": p.id, "active": p.active, "orphaned_agents": orphaned }),
    ))
}
