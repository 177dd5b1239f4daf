//! `/v1/audit`: reading and verifying the audit log, and its signed
//! checkpoints.

use axum::Json;
use axum::extract::{Query, State};
use bridle_core::audit::EventType;
use bridle_store::{AuditFilter, CheckpointFilter, CheckpointStore};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::capability::{AuditReader, Person};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::AppState;
use crate::views::audit::{self as view, AuditEvents, Checkpoints};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this agent's events. A caller without `admin` or `auditor`
    /// reads only the events of agents it owns.
    agent: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(value_type = Option<view::EventType>)]
    kind: Option<String>,
    /// Only events at or after this RFC 3339 instant.
    #[param(example = "2025-01-01T00:00:00Z")]
    since: Option<String>,
    /// Only events with a `seq` greater than this.
    after: Option<u64>,
    /// At most this many events (1 to 1000, default 100).
    limit: Option<u32>,
}

/// Read the audit log: all of it for `admin` and `auditor`; for any other
/// principal the events of the agents it owns (an empty listing when it
/// owns none, or `agent=` names another's).
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
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    Person(p): Person,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditEvents>, ApiError> {
    let Query(q) = q.map_err(super::query_error)?;
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
    // An `agent` that cannot be an agent id names no agent: no events.
    let agent = match q.agent.as_deref() {
        None => None,
        Some(a) => match a.parse::<bridle_core::id::AgentId>() {
            Ok(id) => Some(id),
            Err(_) => return Ok(Json(AuditEvents { events: Vec::new() })),
        },
    };
    let filter = AuditFilter {
        agent,
        kind,
        after_seq: q.after,
        since,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let events = crate::access::audit_events(&state, &p, filter).await?;
    Ok(Json(AuditEvents {
        events: events.into_iter().map(view::AuditEvent::from).collect(),
    }))
}

/// Verify the whole hash chain against the stored head and every signed
/// checkpoint (admin, auditor).
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "audit",
    operation_id = "verify_audit",
    responses(
        (status = 200, description = "The result; `ok: false`, `first_bad_seq` and every broken `seq` in `broken` when the log was altered, cut short or rewritten", body = view::Verification),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn verify(
    State(_state): State<AppState>,
    reader: AuditReader,
) -> Result<Json<view::Verification>, ApiError> {
    let v = crate::checkpoints::verify_log(reader.store(), &[]).await?;
    Ok(Json(v.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckpointQuery {
    /// Only checkpoints made at or after this RFC 3339 instant.
    #[param(example = "2025-01-01T00:00:00Z")]
    since: Option<String>,
    /// Only checkpoints with a `seq` greater than this.
    after: Option<u64>,
    /// At most this many checkpoints (1 to 1000, default 1000).
    limit: Option<u32>,
}

/// The signed checkpoints of the chain, oldest first (admin, auditor).
#[utoipa::path(
    get,
    path = "/v1/audit/checkpoints",
    tag = "audit",
    operation_id = "list_audit_checkpoints",
    params(CheckpointQuery),
    responses(
        (status = 200, description = "The checkpoints, oldest first; each `jws` verifies with the key its `kid` names in JWKS (while that key is published)", body = Checkpoints),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn checkpoints(
    State(_state): State<AppState>,
    reader: AuditReader,
    q: Result<Query<CheckpointQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Checkpoints>, ApiError> {
    let Query(q) = q.map_err(super::query_error)?;
    let since = match q.since.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse()
                .map_err(|_| ApiError::invalid("invalid since", "since", "an RFC 3339 instant"))?,
        ),
    };
    let filter = CheckpointFilter {
        after_seq: q.after,
        since,
        limit: Some(q.limit.unwrap_or(1000).clamp(1, 1000)),
    };
    let checkpoints = reader.store().checkpoints(&filter).await?;
    Ok(Json(Checkpoints {
        checkpoints: checkpoints
            .into_iter()
            .map(view::AuditCheckpoint::from)
            .collect(),
    }))
}
