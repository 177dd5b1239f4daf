//! Posture findings per agent, mapped to OWASP Non-Human Identity Top 10
//! (2025), OWASP Top 10 for Agentic Applications (2026) and NIST AI RMF.
//! Each kind of finding is a [`FindingCode`]; its severity, title and
//! framework controls are stated once, here.

use bridle_core::Manifest;
use bridle_core::audit::EventType;
use bridle_core::id::AgentId;
use bridle_core::manifest::{Access, Environment};
use bridle_store::{
    AgentRow, AuditFilter, AuditRead, ClientAuth, CredentialRow, CredentialStore as _,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::ServiceError;
use crate::state::AppState;

/// A finding about one agent: what kind, and the particulars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub agent: AgentId,
    pub code: FindingCode,
    pub detail: String,
}

/// The kinds of finding, as the API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingCode {
    AgentExpired,
    OwnerOrphaned,
    ReviewOverdue,
    NoReviewCadence,
    WildcardGrant,
    PrivilegedWithoutApproval,
    LongTokenTtl,
    BearerTokensInProd,
    DelegationWithoutForbids,
    StaleClientSecret,
    ManyActiveCredentials,
    SharedSecretInProd,
    AuthFailures,
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

impl FindingCode {
    pub const ALL: [FindingCode; 13] = [
        Self::AgentExpired,
        Self::OwnerOrphaned,
        Self::ReviewOverdue,
        Self::NoReviewCadence,
        Self::WildcardGrant,
        Self::PrivilegedWithoutApproval,
        Self::LongTokenTtl,
        Self::BearerTokensInProd,
        Self::DelegationWithoutForbids,
        Self::StaleClientSecret,
        Self::ManyActiveCredentials,
        Self::SharedSecretInProd,
        Self::AuthFailures,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentExpired => "agent_expired",
            Self::OwnerOrphaned => "owner_orphaned",
            Self::ReviewOverdue => "review_overdue",
            Self::NoReviewCadence => "no_review_cadence",
            Self::WildcardGrant => "wildcard_grant",
            Self::PrivilegedWithoutApproval => "privileged_without_approval",
            Self::LongTokenTtl => "long_token_ttl",
            Self::BearerTokensInProd => "bearer_tokens_in_prod",
            Self::DelegationWithoutForbids => "delegation_without_forbids",
            Self::StaleClientSecret => "stale_client_secret",
            Self::ManyActiveCredentials => "many_active_credentials",
            Self::SharedSecretInProd => "shared_secret_in_prod",
            Self::AuthFailures => "auth_failures",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Self::AgentExpired => Severity::High,
            Self::OwnerOrphaned => Severity::High,
            Self::ReviewOverdue => Severity::Medium,
            Self::NoReviewCadence => Severity::Low,
            Self::WildcardGrant => Severity::High,
            Self::PrivilegedWithoutApproval => Severity::Medium,
            Self::LongTokenTtl => Severity::Low,
            Self::BearerTokensInProd => Severity::Info,
            Self::DelegationWithoutForbids => Severity::Medium,
            Self::StaleClientSecret => Severity::Medium,
            Self::ManyActiveCredentials => Severity::Low,
            Self::SharedSecretInProd => Severity::Info,
            Self::AuthFailures => Severity::High,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::AgentExpired => "Agent past its expiry is still registered",
            Self::OwnerOrphaned => "Agent has no active accountable owner",
            Self::ReviewOverdue => "Access review overdue",
            Self::NoReviewCadence => "Production agent without a review cadence",
            Self::WildcardGrant => "Grant of every tool",
            Self::PrivilegedWithoutApproval => "Admin or export access without human approval",
            Self::LongTokenTtl => "Access tokens live longer than 15 minutes",
            Self::BearerTokensInProd => "Production tokens are not sender-constrained",
            Self::DelegationWithoutForbids => "Delegating agent has no explicit forbids",
            Self::StaleClientSecret => "Client secret not rotated in 90 days",
            Self::ManyActiveCredentials => "Several active OAuth clients for one agent",
            Self::SharedSecretInProd => "Production agent authenticates with a shared secret",
            Self::AuthFailures => "Repeated failed authentication of the agent's clients",
        }
    }

    /// The framework controls it maps to.
    pub fn frameworks(self) -> &'static [&'static str] {
        match self {
            Self::AgentExpired => &[
                "OWASP-NHI1:2025",
                "OWASP-ASI10:2026",
                "NIST-AI-RMF-GOVERN-1.7",
            ],
            Self::OwnerOrphaned => &[
                "OWASP-NHI1:2025",
                "OWASP-ASI10:2026",
                "NIST-AI-RMF-GOVERN-2.1",
            ],
            Self::ReviewOverdue => &["OWASP-NHI5:2025", "NIST-AI-RMF-GOVERN-1.5"],
            Self::NoReviewCadence => &["OWASP-NHI5:2025", "NIST-AI-RMF-GOVERN-1.5"],
            Self::WildcardGrant => &[
                "OWASP-NHI5:2025",
                "OWASP-ASI03:2026",
                "OWASP-ASI02:2026",
                "NIST-AI-RMF-MANAGE-1.3",
            ],
            Self::PrivilegedWithoutApproval => &[
                "OWASP-NHI5:2025",
                "OWASP-ASI03:2026",
                "OWASP-ASI09:2026",
                "NIST-AI-RMF-MANAGE-2.4",
            ],
            Self::LongTokenTtl => &["OWASP-NHI7:2025", "NIST-AI-RMF-MEASURE-2.7"],
            Self::BearerTokensInProd => &[
                "OWASP-NHI2:2025",
                "OWASP-NHI4:2025",
                "NIST-AI-RMF-MEASURE-2.7",
            ],
            Self::DelegationWithoutForbids => &[
                "OWASP-ASI07:2026",
                "OWASP-ASI03:2026",
                "NIST-AI-RMF-MAP-4.1",
            ],
            Self::StaleClientSecret => &[
                "OWASP-NHI7:2025",
                "OWASP-NHI2:2025",
                "NIST-AI-RMF-MANAGE-2.4",
            ],
            Self::ManyActiveCredentials => &[
                "OWASP-NHI9:2025",
                "OWASP-NHI1:2025",
                "NIST-AI-RMF-GOVERN-1.6",
            ],
            Self::SharedSecretInProd => &[
                "OWASP-NHI4:2025",
                "OWASP-NHI2:2025",
                "NIST-AI-RMF-MEASURE-2.7",
            ],
            Self::AuthFailures => &[
                "OWASP-NHI4:2025",
                "OWASP-NHI2:2025",
                "OWASP-ASI03:2026",
                "NIST-AI-RMF-MEASURE-2.7",
            ],
        }
    }
}

/// Every finding about `row` now: its record and manifest, its
/// credentials, and what the audit log shows of it.
pub async fn of_agent(state: &AppState, row: &AgentRow) -> Result<Vec<Finding>, ServiceError> {
    let flags = super::agents::flags(state, row).await?;
    let flags: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
    let manifest = state.compiled(row).await?.manifest().clone();
    let mut out = for_agent(row, &manifest, &flags);
    out.extend(of_credentials(state, row, &manifest).await?);
    out.extend(for_auth_failures(state, row).await?);
    Ok(out)
}

pub fn for_agent(row: &AgentRow, m: &Manifest, flags: &[&str]) -> Vec<Finding> {
    let agent = row.id.clone();
    let mut out = Vec::new();
    let mut add = |code, detail: String| {
        out.push(Finding {
            agent: agent.clone(),
            code,
            detail,
        });
    };
    if flags.contains(&"expired") {
        add(
            FindingCode::AgentExpired,
            format!(
                "`{}` expired on {}; retire it or renew its record",
                row.id, m.expires
            ),
        );
    }
    if flags.contains(&"orphaned") {
        add(
            FindingCode::OwnerOrphaned,
            format!("owner `{}` is deactivated or unknown", m.owner),
        );
    }
    if flags.contains(&"review_overdue") {
        add(
            FindingCode::ReviewOverdue,
            "the last access review is older than `review_every`".into(),
        );
    }
    if m.review_every.is_none() && m.environment == Environment::Prod {
        add(
            FindingCode::NoReviewCadence,
            "set `review_every` so access is re-certified".into(),
        );
    }
    for (i, g) in m.tools.iter().enumerate() {
        let name = g.name.as_str();
        if name == "*" {
            add(
                FindingCode::WildcardGrant,
                format!("tools[{i}] grants `*`: the agent may call any tool"),
            );
        }
        if matches!(g.access, Access::Admin | Access::Export) && g.approval.is_none() {
            add(
                FindingCode::PrivilegedWithoutApproval,
                format!(
                    "tools[{i}] `{name}` has `{}` access and no approval rule",
                    g.access.as_str()
                ),
            );
        }
    }
    if m.credentials.token_ttl > bridle_core::manifest::Credentials::DEFAULT_TTL {
        add(
            FindingCode::LongTokenTtl,
            format!(
                "token_ttl is {}",
                bridle_core::manifest::units::format_duration(m.credentials.token_ttl)
            ),
        );
    }
    if m.environment == Environment::Prod && !m.credentials.dpop_required {
        add(
            FindingCode::BearerTokensInProd,
            "set `credentials.dpop: required` to bind tokens to the agent's key".into(),
        );
    }
    if !m.delegation.to.is_empty() && m.forbid.is_empty() {
        add(
            FindingCode::DelegationWithoutForbids,
            "a delegate is bounded by this record only; list what must never happen under `forbid`"
                .into(),
        );
    }
    out
}

/// A client secret older than this without rotation is a finding.
const SECRET_MAX_AGE: jiff::SignedDuration = jiff::SignedDuration::from_hours(90 * 24);
/// More active clients than this suggests one identity shared by several
/// deployments.
const MAX_ACTIVE_CLIENTS: usize = 2;

/// [`for_credentials`] of the agent's credentials as stored now.
pub async fn of_credentials(
    state: &AppState,
    row: &AgentRow,
    m: &Manifest,
) -> Result<Vec<Finding>, ServiceError> {
    let creds = state.store().credentials(&row.id).await?;
    Ok(for_credentials(row, m, &creds))
}

/// Credential hygiene: long-lived secrets, shared identities, secrets where
/// keys would do.
pub fn for_credentials(row: &AgentRow, m: &Manifest, creds: &[CredentialRow]) -> Vec<Finding> {
    let agent = row.id.clone();
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
            code: FindingCode::StaleClientSecret,
            detail: format!(
                    "`{}` has used the same secret since {since}; rotate it (`bridle agent credentials rotate`) or move to `private_key_jwt`",
                    c.client_id
                ),
        });
        }
    }
    if active.len() > MAX_ACTIVE_CLIENTS {
        out.push(Finding {
            agent: agent.clone(),
            code: FindingCode::ManyActiveCredentials,
            detail: format!(
                "{} clients can get tokens for `{}`; one identity shared by several deployments cannot be told apart or revoked separately",
                active.len(),
                row.id
            ),
        });
    }
    let secrets = active
        .iter()
        .filter(|c| matches!(c.auth, ClientAuth::Secret { .. }))
        .count();
    if m.environment == Environment::Prod && secrets > 0 {
        out.push(Finding {
            agent,
            code: FindingCode::SharedSecretInProd,
            detail: format!(
                "{secrets} client(s) use a client secret; register a public key instead (`private_key_jwt`), so no secret exists to leak"
            ),
        });
    }
    out
}

/// How far back failed client authentications count.
const AUTH_FAILURES_SINCE: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// Failed authentications of the agent's clients, from the audit log (so
/// every replica's and every restart's): as many as lock a client
/// (`auth_throttle.max_failures`) within a day is a finding.
pub async fn for_auth_failures(
    state: &AppState,
    row: &AgentRow,
) -> Result<Option<Finding>, ServiceError> {
    let filter = AuditFilter {
        agent: Some(row.id.clone()),
        kind: Some(EventType::Authentication),
        after_seq: None,
        since: Some(jiff::Timestamp::now() - AUTH_FAILURES_SINCE),
        limit: 1000,
    };
    let events = state.store().audit_events(&filter).await?;
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
        agent: row.id.clone(),
        code: FindingCode::AuthFailures,
        detail: format!(
            "{failures} failed client authentications and {throttled} throttled attempts in the last 24 hours, from {}; someone may be guessing a secret, or a deployment holds a revoked or stale one (`bridle audit list --type authentication --agent {}`)",
            sources.join(", "),
            row.id
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_named_as_serialized_and_maps_to_controls() {
        for code in FindingCode::ALL {
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::Value::from(code.as_str()))
            );
            assert!(!code.title().is_empty());
            assert!(
                code.frameworks().iter().any(|f| f.starts_with("OWASP-"))
                    && code
                        .frameworks()
                        .iter()
                        .any(|f| f.starts_with("NIST-AI-RMF-")),
                "{code:?}"
            );
        }
    }
}
