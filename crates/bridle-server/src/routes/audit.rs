//! `/v1/audit`: reading and verifying the audit log.

use axum::Json;
use axum::extract::{Query, State};
use bridle_core::audit::EventType;
use bridle_store::{AuditFilter, AuditRead, Role};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    agent: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    since: Option<String>,
    after: Option<u64>,
    limit: Option<u32>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
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
            ApiError::invalid("invalid type", "type", "one of decision, outcome, approval, elevation, credential, token, lifecycle, manifest, principal")
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
    Ok(Json(serde_json::json!({ "events": events })))
}

pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = caller.require_principal()?;
    if !(p.has_role(Role::Admin) || p.has_role(Role::Auditor)) {
        return Err(ApiError::Forbidden("requires `admin` or `auditor`".into()));
    }
    let v = state.store.verify_audit().await?;
    Ok(Json(serde_json::to_value(v).unwrap_or_default()))
}
