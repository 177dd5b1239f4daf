//! `GET /v1/findings`: posture findings per agent (`service::findings`),
//! mapped to OWASP Non-Human Identity Top 10 (2025), OWASP Top 10 for
//! Agentic Applications (2026) and NIST AI RMF.

use axum::Json;
use axum::extract::{Query, State};
use bridle_core::id::AgentId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi as doc;
use crate::path::PathId as _;
use crate::service::findings::{self, FindingCode, Severity};
use crate::state::AppState;

/// A posture finding about one agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Finding {
    #[schema(example = "procurement-bot")]
    agent: String,
    code: FindingCode,
    severity: Severity,
    #[schema(value_type = String)]
    title: &'static str,
    detail: String,
    /// Framework controls it maps to, e.g. `OWASP-NHI1:2025`, `NIST-AI-RMF-GOVERN-1.7`.
    #[schema(value_type = Vec<String>)]
    frameworks: &'static [&'static str],
    /// What it is about within the agent (a tool, a client id, a
    /// delegate); empty for the agent as a whole.
    subject: String,
    /// What to do about it.
    #[schema(value_type = String)]
    remediation: &'static str,
    /// The facts it rests on: manifest paths and lines, counts, audit
    /// sequence numbers.
    #[schema(value_type = Object)]
    evidence: serde_json::Value,
    /// When the posture sweep first saw it open (RFC 3339); `null` when
    /// no sweep has recorded it yet.
    #[schema(required = true)]
    opened_at: Option<String>,
}

impl Finding {
    fn new(f: findings::Finding, opened_at: Option<jiff::Timestamp>) -> Self {
        let findings::Finding {
            agent,
            code,
            subject,
            detail,
            evidence,
        } = f;
        Self {
            agent: agent.to_string(),
            code,
            severity: code.severity(),
            title: code.title(),
            detail,
            frameworks: code.frameworks(),
            subject,
            remediation: code.remediation(),
            evidence,
            opened_at: opened_at.map(crate::views::time::instant),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FindingsQuery {
    /// Only this agent's findings.
    agent: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FindingList {
    findings: Vec<Finding>,
}

/// Posture findings of active and suspended agents: every agent's for
/// `admin` and `auditor`, the agents it owns for any other principal
/// (`agent=` naming an agent the caller may not see is 404).
#[utoipa::path(
    get,
    path = "/v1/findings",
    tag = "findings",
    operation_id = "list_findings",
    params(FindingsQuery),
    responses(
        (status = 200, description = "The findings", body = FindingList),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<FindingsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<FindingList>, ApiError> {
    let Query(q) = q.map_err(super::query_error)?;
    let p = caller.require_principal()?;
    let rows = match &q.agent {
        Some(raw) => {
            // An `agent` that cannot be an agent id names no agent.
            let id: AgentId = raw.parse().map_err(|_| AgentId::not_found(raw))?;
            vec![crate::access::principal_agent(&state, &caller, &id).await?]
        }
        None => crate::access::agents(&state, p).await?,
    };
    let mut findings = Vec::new();
    for row in rows
        .iter()
        .filter(|r| r.state != bridle_core::engine::AgentState::Retired)
    {
        let open = findings::open(&state, &row.id).await?;
        for f in findings::of_agent(&state, row).await? {
            let opened = open
                .iter()
                .find(|o| o.code == f.code.as_str() && o.subject == f.subject)
                .map(|o| o.opened_at);
            findings.push(Finding::new(f, opened));
        }
    }
    Ok(Json(FindingList { findings }))
}
