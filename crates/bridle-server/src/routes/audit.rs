//! `/v1/audit`: reading and verifying the audit log.

use axum::Json;
use axum::extract::{Query, State};
use bridle_core::audit::EventType;
use bridle_store::{AuditFilter, AuditRead, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this agent's events (required unless the caller is `admin` or
    /// `auditor`: owners read their own agents' events).
    agent: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(value_type = Option<doc::EventTypeSchema>)]
    kind: Option<String>,
    /// Only events at or after this RFC 3339 instant.
    #[param(example = "2025-01-01T00:00:00Z")]
    since: Option<String>,
    /// Only events with a `seq` greater than this.
    after: Option<u64>,
    /// At most this many events (1 to 1000, default 100).
    limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvents {
    #[schema(value_type = Vec<doc::AuditEventSchema>)]
    events: Vec<bridle_core::audit::AuditEvent>,
}

/// Read the audit log (admin, auditor; owners for their agents).
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    operation_id = "list_audit_events",
    params(AuditQuery),
    responses(
        (status = 200, description = "The events, oldest first", body = AuditEvents),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditEvents>, ApiError> {
    let Query(q) = q.map_err(super::query_error)?;
    let p = caller.require_principal()?;
    let privileged = p.has_role(Role::Admin) || p.has_role(Role::Auditor);
    if !privileged {
        // Owners read their own agents' events, one agent at a time.
        let Some(agent) = &q.agent else {
            return Err(ApiError::Forbidden(
                "requires `admin` or `auditor`, or `agent=` naming an agent you own".into(),
            ));
        };
        let row = super::agents::load(&state, agent).await?;
        if row.owner != p.id {
            return Err(ApiError::Forbidden(format!("you do not own `{agent}`")));
        }
    }
    let kind = match q.kind.as_deref() {
        None | Some("") => None,
        Some(t) => Some(EventType::parse(t).ok_or_else(|| {
            ApiError::invalid("invalid type", "type", "one of decision, outcome, approval, elevation, credential, token, lifecycle, manifest, principal, authentication")
        })?),
    };
    let since = match q.since.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse()
                .map_err(|_| ApiError::invalid("invalid since", "since", "an RFC 3339 instant"))?,
        ),
    };
    let filter = AuditFilter {
        agent: q.agent.clone(),
        kind,
        after_seq: q.after,
        since,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let events = state.store.audit_events(&filter).await?;
    Ok(Json(AuditEvents { events }))
}

/// Verify the whole hash chain (admin, auditor).
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "audit",
    operation_id = "verify_audit",
    responses(
        (status = 200, description = "The result; `ok: false` and `first_bad_seq` on a broken chain", body = doc::VerificationSchema),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<bridle_core::audit::Verification>, ApiError> {
    let p = caller.require_principal()?;
    if !(p.has_role(Role::Admin) || p.has_role(Role::Auditor)) {
        return Err(ApiError::Forbidden("requires `admin` or `auditor`".into()));
    }
    let v = state.store.verify_audit().await?;
    Ok(Json(v))
}
