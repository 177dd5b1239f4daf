//! `/v1/agents`: the registry — apply, list, show, lifecycle, review,
//! credentials.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bridle_core::Manifest;
use bridle_core::audit::EventType;
use bridle_core::engine::AgentState;
use bridle_core::id::AgentId;
use bridle_store::{AgentRow, CredentialStore, PrincipalStore, RegistryRead, RegistryWrite};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::{hash_secret, random_token};

/// The agent record of the API contract, with derived flags.
pub async fn record(state: &AppState, row: &AgentRow) -> Result<serde_json::Value, ApiError> {
    let now = Timestamp::now();
    let mut flags = Vec::new();
    let today = now
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    if row.expires < today {
        flags.push("expired");
    }
    if let Some(every) = row.manifest.get("review_every").and_then(|v| v.as_str())
        && let Ok(every) = bridle_core::manifest::units::parse_duration(every)
    {
        let last = row.last_review_at.as_deref().unwrap_or(&row.created_at);
        if last.parse::<Timestamp>().is_ok_and(|t| t + every < now) {
            flags.push("review_overdue");
        }
    }
    match state.store.principal(&row.owner).await? {
        Some(p) if p.active => {}
        _ => flags.push("orphaned"),
    }
    Ok(serde_json::json!({
        "id": row.id,
        "version": row.version,
        "state": row.state.as_str(),
        "state_reason": row.state_reason,
        "owner": row.owner,
        "environment": row.environment,
        "expires": row.expires,
        "flags": flags,
        "manifest": row.manifest,
        "last_review_at": row.last_review_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }))
}

pub async fn load(state: &AppState, id: &str) -> Result<AgentRow, ApiError> {
    let not_found = || ApiError::NotFound(format!("agent `{id}` not found"));
    let id: AgentId = id.parse().map_err(|_| not_found())?;
    state.store.agent(&id).await?.ok_or_else(not_found)
}

pub async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let principal = caller.require_principal()?.clone();
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })?;
    let source = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8 text".into()))?;
    let manifest = Manifest::from_source(source)?;
    if manifest.agent.as_str() != id {
        return Err(ApiError::BadRequest(format!(
            "the path names `{id}` but the manifest's `agent` is `{}`",
            manifest.agent
        )));
    }
    let existing = state.store.agent(&manifest.agent).await?;
    let allowed = caller.is_admin()
        || match &existing {
            Some(row) => row.owner == principal.id,
            None => manifest.owner == principal.id,
        };
    if !allowed {
        return Err(ApiError::Forbidden(
            "only an admin or the agent's owner may apply its manifest".into(),
        ));
    }
    match state.store.principal(&manifest.owner).await? {
        Some(p) if p.active => {}
        _ => {
            return Err(ApiError::invalid(
                "the manifest's owner is not an active principal",
                "owner",
                format!("`{}` is not an active principal", manifest.owner),
            ));
        }
    }
    // Compile before storing: a manifest that cannot be enforced is not accepted.
    bridle_core::CompiledAgent::compile(manifest.clone(), &state.guardrails)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (row, created) = state
        .store
        .apply_manifest(&manifest, source, principal.id.as_str())
        .await?;
    let mut event = state.event(EventType::Manifest, &caller.actor());
    event.agent = Some(row.id.to_string());
    event.detail = Some(
        serde_json::json!({"op": if created { "create" } else { "update" }, "version": row.version}),
    );
    state.audit(event).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record(&state, &row).await?)))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_principal()?;
    let mut agents = Vec::new();
    for row in state.store.agents().await? {
        agents.push(record(&state, &row).await?);
    }
    Ok(Json(serde_json::json!({ "agents": agents })))
}

pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let row = load(&state, &id).await?;
    if let Caller::Agent(a) = &caller
        && a.claims.sub != row.id.as_str()
    {
        return Err(ApiError::Forbidden(
            "an agent may only read its own record".into(),
        ));
    }
    Ok(Json(record(&state, &row).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    reason: String,
}

async fn transition(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: Result<Json<Reason>, axum::extract::rejection::JsonRejection>,
    to: AgentState,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(body) = body.map_err(super::json_error)?;
    if body.reason.trim().is_empty() {
        return Err(ApiError::invalid(
            "a reason is required",
            "reason",
            "must not be empty",
        ));
    }
    let row = load(state, id).await?;
    if !caller.manages(&row) {
        return Err(ApiError::Forbidden(
            "only an admin or the agent's owner may change its lifecycle".into(),
        ));
    }
    if row.state == AgentState::Retired {
        return Err(ApiError::Conflict(format!(
            "agent `{id}` is retired; retirement is final"
        )));
    }
    let row = match to {
        AgentState::Retired => state.store.retire(&row.id, &body.reason).await?,
        other => state.store.set_state(&row.id, other, &body.reason).await?,
    };
    let mut event = state.event(EventType::Lifecycle, &caller.actor());
    event.agent = Some(row.id.to_string());
    event.detail = Some(serde_json::json!({"state": to.as_str(), "reason": body.reason}));
    state.audit(event).await?;
    Ok(Json(record(state, &row).await?))
}

pub async fn suspend(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<Reason>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    transition(&state, &caller, &id, body, AgentState::Suspended).await
}

pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<Reason>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    transition(&state, &caller, &id, body, AgentState::Active).await
}

pub async fn retire(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<Reason>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    transition(&state, &caller, &id, body, AgentState::Retired).await
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Review {
    comment: Option<String>,
}

pub async fn review(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<Json<Review>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let row = load(&state, &id).await?;
    if !caller.manages(&row) {
        return Err(ApiError::Forbidden(
            "only an admin or the agent's owner may review it".into(),
        ));
    }
    let row = state.store.record_review(&row.id).await?;
    let mut event = state.event(EventType::Lifecycle, &caller.actor());
    event.agent = Some(row.id.to_string());
    event.detail =
        Some(serde_json::json!({"op": "review", "comment": body.and_then(|b| b.0.comment)}));
    state.audit(event).await?;
    Ok(Json(record(&state, &row).await?))
}

pub async fn create_credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let row = load(&state, &id).await?;
    if !caller.manages(&row) {
        return Err(ApiError::Forbidden(
            "only an admin or the agent's owner may create credentials".into(),
        ));
    }
    if row.state == AgentState::Retired {
        return Err(ApiError::Conflict(format!("agent `{id}` is retired")));
    }
    let client_id = format!("{}.{}", row.id, random_token(9));
    let secret = format!("bcs_{}", random_token(32));
    state
        .store
        .add_credential(row.id.as_str(), &client_id, &hash_secret(&secret))
        .await?;
    let mut event = state.event(EventType::Credential, &caller.actor());
    event.agent = Some(row.id.to_string());
    event.detail = Some(serde_json::json!({"op": "create", "client_id": client_id}));
    state.audit(event).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "client_id": client_id, "client_secret": secret })),
    ))
}

/// Whole days: used by findings for stale and expiring agents.
pub fn days(d: SignedDuration) -> i64 {
    d.as_secs() / 86_400
}
