//! `GET /v1/findings`: posture findings per agent, mapped to OWASP Non-Human
//! Identity Top 10 (2025), OWASP Top 10 for Agentic Applications (2026) and
//! NIST AI RMF.

use axum::Json;
use axum::extract::{Query, State};
use bridle_core::Manifest;
use bridle_core::audit::EventType;
use bridle_core::id::AgentId;
use bridle_core::manifest::{Access, Environment};
use bridle_store::{AgentRow, AuditFilter, AuditRead, ClientAuth, CredentialRow, CredentialStore};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi as doc;
use crate::path::PathId as _;
use crate::state::AppState;

/// A posture finding about one agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Finding {
    agent: String,
    #[schema(value_type = String, example = "wildcard_grant")]
    code: &'static str,
    severity: Severity,
    #[schema(value_type = String)]
    title: &'static str,
    detail: String,
    /// Framework controls it maps to, e.g. `OWASP-NHI1:2025`, `NIST-AI-RMF-GOVERN-1.7`.
    #[schema(value_type = Vec<String>)]
    frameworks: &'static [&'static str],
}

/// How much a finding matters: `high`, `medium`, `low` or `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
    Low,
    Info,
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
        let flags = super::agents::flags(&state, row).await?;
        let flags: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
        let manifest = state.compiled(row).await?.manifest().clone();
        findings.extend(for_agent(row, &manifest, &flags));
        let credentials = state.store.credentials(&row.id).await?;
        findings.extend(for_credentials(row, &manifest, &credentials));
        findings.extend(for_auth_failures(&state, row).await?);
    }
    Ok(Json(FindingList { findings }))
}

fn for_agent(row: &AgentRow, m: &Manifest, flags: &[&str]) -> Vec<Finding> {
    let agent = row.id.to_string();
    let mut out = Vec::new();
    let mut add = |code, severity, title, detail: String, frameworks| {
        out.push(Finding {
            agent: agent.clone(),
            code,
            severity,
            title,
            detail,
            frameworks,
        });
    };
    if flags.contains(&"expired") {
        add(
            "agent_expired",
            Severity::High,
            "Agent past its expiry is still registered",
            format!(
                "`{}` expired on {}; retire it or renew its record",
                row.id, m.expires
            ),
            &[
                "OWASP-NHI1:2025",
                "OWASP-ASI10:2026",
                "NIST-AI-RMF-GOVERN-1.7",
            ],
        );
    }
    if flags.contains(&"orphaned") {
        add(
            "owner_orphaned",
            Severity::High,
            "Agent has no active accountable owner",
            format!("owner `{}` is deactivated or unknown", m.owner),
            &[
                "OWASP-NHI1:2025",
                "OWASP-ASI10:2026",
                "NIST-AI-RMF-GOVERN-2.1",
            ],
        );
    }
    if flags.contains(&"review_overdue") {
        add(
            "review_overdue",
            Severity::Medium,
            "Access review overdue",
            "the last access review is older than `review_every`".into(),
            &["OWASP-NHI5:2025", "NIST-AI-RMF-GOVERN-1.5"],
        );
    }
    if m.review_every.is_none() && m.environment == Environment::Prod {
        add(
            "no_review_cadence",
            Severity::Low,
            "Production agent without a review cadence",
            "set `review_every` so access is re-certified".into(),
            &["OWASP-NHI5:2025", "NIST-AI-RMF-GOVERN-1.5"],
        );
    }
    for (i, g) in m.tools.iter().enumerate() {
        let name = g.name.as_str();
        if name == "*" {
            add(
                "wildcard_grant",
                Severity::High,
                "Grant of every tool",
                format!("tools[{i}] grants `*`: the agent may call any tool"),
                &[
                    "OWASP-NHI5:2025",
                    "OWASP-ASI03:2026",
                    "OWASP-ASI02:2026",
                    "NIST-AI-RMF-MANAGE-1.3",
                ],
            );
        }
        if matches!(g.access, Access::Admin | Access::Export) && g.approval.is_none() {
            add(
                "privileged_without_approval",
                Severity::Medium,
                "Admin or export access without human approval",
                format!(
                    "tools[{i}] `{name}` has `{}` access and no approval rule",
                    g.access.as_str()
                ),
                &[
                    "OWASP-NHI5:2025",
                    "OWASP-ASI03:2026",
                    "OWASP-ASI09:2026",
                    "NIST-AI-RMF-MANAGE-2.4",
                ],
            );
        }
    }
    if m.credentials.token_ttl > bridle_core::manifest::Credentials::DEFAULT_TTL {
        add(
            "long_token_ttl",
            Severity::Low,
            "Access tokens live longer than 15 minutes",
            format!(
                "token_ttl is {}",
                bridle_core::manifest::units::format_duration(m.credentials.token_ttl)
            ),
            &["OWASP-NHI7:2025", "NIST-AI-RMF-MEASURE-2.7"],
        );
    }
    if m.environment == Environment::Prod && !m.credentials.dpop_required {
        add(
            "bearer_tokens_in_prod",
            Severity::Info,
            "Production tokens are not sender-constrained",
            "set `credentials.dpop: required` to bind tokens to the agent's key".into(),
            &[
                "OWASP-NHI2:2025",
                "OWASP-NHI4:2025",
                "NIST-AI-RMF-MEASURE-2.7",
            ],
        );
    }
    if !m.delegation.to.is_empty() && m.forbid.is_empty() {
        add(
            "delegation_without_forbids",
            Severity::Medium,
            "Delegating agent has no explicit forbids",
            "a delegate is bounded by this record only; list what must never happen under `forbid`"
                .into(),
            &[
                "OWASP-ASI07:2026",
                "OWASP-ASI03:2026",
                "NIST-AI-RMF-MAP-4.1",
            ],
        );
    }
    out
}

/// A client secret older than this without rotation is a finding.
const SECRET_MAX_AGE: jiff::SignedDuration = jiff::SignedDuration::from_hours(90 * 24);
/// More active clients than this suggests one identity shared by several
/// deployments.
const MAX_ACTIVE_CLIENTS: usize = 2;

/// Credential hygiene: long-lived secrets, shared identities, secrets where
/// keys would do.
fn for_credentials(row: &AgentRow, m: &Manifest, creds: &[CredentialRow]) -> Vec<Finding> {
    let agent = row.id.to_string();
    let active: Vec<&CredentialRow> = creds.iter().filter(|c| c.revoked_at.is_none()).collect();
    let now = jiff::Timestamp::now();
    let mut out = Vec::new();
    for c in &active {
        let ClientAuth::Secret { .. } = c.auth else {
            continue;
        };
        let since = c.rotated_at.unwrap_or(c.created_at);
        if now - since > SECRET_MAX_AGE {
            out.push(Finding {
                agent: agent.clone(),
                code: "stale_client_secret",
                severity: Severity::Medium,
                title: "Client secret not rotated in 90 days",
                detail: format!(
                    "`{}` has used the same secret since {since}; rotate it (`bridle agent credentials rotate`) or move to `private_key_jwt`",
                    c.client_id
                ),
                frameworks: &["OWASP-NHI7:2025", "OWASP-NHI2:2025", "NIST-AI-RMF-MANAGE-2.4"],
            });
        }
    }
    if active.len() > MAX_ACTIVE_CLIENTS {
        out.push(Finding {
            agent: agent.clone(),
            code: "many_active_credentials",
            severity: Severity::Low,
            title: "Several active OAuth clients for one agent",
            detail: format!(
                "{} clients can get tokens for `{}`; one identity shared by several deployments cannot be told apart or revoked separately",
                active.len(),
                row.id
            ),
            frameworks: &["OWASP-NHI9:2025", "OWASP-NHI1:2025", "NIST-AI-RMF-GOVERN-1.6"],
        });
    }
    let secrets = active
        .iter()
        .filter(|c| matches!(c.auth, ClientAuth::Secret { .. }))
        .count();
    if m.environment == Environment::Prod && secrets > 0 {
        out.push(Finding {
            agent,
            code: "shared_secret_in_prod",
            severity: Severity::Info,
            title: "Production agent authenticates with a shared secret",
            detail: format!(
                "{secrets} client(s) use a client secret; register a public key instead (`private_key_jwt`), so no secret exists to leak"
            ),
            frameworks: &["OWASP-NHI4:2025", "OWASP-NHI2:2025", "NIST-AI-RMF-MEASURE-2.7"],
        });
    }
    out
}

/// How far back failed client authentications count.
const AUTH_FAILURES_SINCE: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// Failed authentications of the agent's clients, from the audit log (so
/// every replica's and every restart's): as many as lock a client
/// (`auth_throttle.max_failures`) within a day is a finding.
async fn for_auth_failures(state: &AppState, row: &AgentRow) -> Result<Option<Finding>, ApiError> {
    let filter = AuditFilter {
        agent: Some(row.id.clone()),
        kind: Some(EventType::Authentication),
        after_seq: None,
        since: Some(jiff::Timestamp::now() - AUTH_FAILURES_SINCE),
        limit: 1000,
    };
    let events = state.store.audit_events(&filter).await?;
    let count = |field: &str| -> u64 {
        events
            .iter()
            .filter_map(|e| e.body.detail.as_ref()?.get(field)?.as_u64())
            .sum()
    };
    let (failures, throttled) = (count("failures"), count("throttled"));
    if failures < u64::from(state.config.auth_throttle.max_failures) {
        return Ok(None);
    }
    let sources: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.body.detail.as_ref()?.get("source")?.as_str())
        .collect();
    let sources: Vec<&str> = sources.into_iter().collect();
    Ok(Some(Finding {
        agent: row.id.to_string(),
        code: "auth_failures",
        severity: Severity::High,
        title: "Repeated failed authentication of the agent's clients",
        detail: format!(
            "{failures} failed client authentications and {throttled} throttled attempts in the last 24 hours, from {}; someone may be guessing a secret, or a deployment holds a revoked or stale one (`bridle audit list --type authentication --agent {}`)",
            sources.join(", "),
            row.id
        ),
        frameworks: &[
            "OWASP-NHI4:2025",
            "OWASP-NHI2:2025",
            "OWASP-ASI03:2026",
            "NIST-AI-RMF-MEASURE-2.7",
        ],
    }))
}
