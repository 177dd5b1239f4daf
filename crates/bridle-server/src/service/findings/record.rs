//! Findings that the record alone shows: its flags, its manifest and its
//! credentials. Pure functions of what is stored, so each rule is tested
//! with a fixture that triggers it and one that does not.

use bridle_core::Manifest;
use bridle_core::manifest::{Access, Credentials, Environment, units};
use bridle_store::{AgentRow, ClientAuth, CredentialRow};
use serde_json::json;

use super::{Finding, FindingCode};

/// A client secret older than this without rotation is a finding.
const SECRET_MAX_AGE: jiff::SignedDuration = jiff::SignedDuration::from_hours(90 * 24);
/// More active clients than this suggests one identity shared by several
/// deployments.
const MAX_ACTIVE_CLIENTS: usize = 2;

/// The findings of the record and its manifest. `flags` are the record's
/// derived flags (`expired`, `orphaned`, `review_overdue`).
pub fn for_agent(row: &AgentRow, m: &Manifest, flags: &[&str]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |code, subject: &str, detail: String, evidence| {
        out.push(Finding::new(row, code, subject, detail, evidence));
    };
    if flags.contains(&"expired") {
        add(
            FindingCode::AgentExpired,
            "",
            format!(
                "`{}` expired on {}; retire it or renew its record",
                row.id, m.expires
            ),
            json!({"expires": m.expires.to_string(), "state": row.state.as_str()}),
        );
    }
    if flags.contains(&"orphaned") {
        add(
            FindingCode::OwnerOrphaned,
            "",
            format!("owner `{}` is deactivated or unknown", m.owner),
            json!({"owner": m.owner.as_str()}),
        );
    }
    if flags.contains(&"review_overdue") {
        let last = row.last_review_at.unwrap_or(row.created_at);
        add(
            FindingCode::ReviewOverdue,
            "",
            "the last access review is older than `review_every`".into(),
            json!({
                "last_review": crate::views::time::instant(last),
                "review_every": m.review_every.map(units::format_duration),
                "due": m.review_every.and_then(|every| last.checked_add(every).ok()).map(crate::views::time::instant),
            }),
        );
    }
    if m.review_every.is_none() && m.environment == Environment::Prod {
        add(
            FindingCode::NoReviewCadence,
            "",
            "set `review_every` so access is re-certified".into(),
            json!({"environment": m.environment.as_str()}),
        );
    }
    for (i, g) in m.tools.iter().enumerate() {
        let name = g.name.as_str();
        let at = json!({"path": format!("tools[{i}]"), "line": g.pos.line, "tool": name, "access": g.access.as_str()});
        if name == "*" {
            add(
                FindingCode::WildcardGrant,
                name,
                format!("tools[{i}] grants `*`: the agent may call any tool"),
                at.clone(),
            );
        }
        if matches!(g.access, Access::Admin | Access::Export) && g.approval.is_none() {
            add(
                FindingCode::PrivilegedWithoutApproval,
                name,
                format!(
                    "tools[{i}] `{name}` has `{}` access and no approval rule",
                    g.access.as_str()
                ),
                at.clone(),
            );
        }
        if g.access == Access::Write
            && g.approval.is_none()
            && !bridle_core::manifest::warnings::budgeted(m, g)
        {
            add(
                FindingCode::UnboundedWrite,
                name,
                format!(
                    "tools[{i}] `{name}` has `write` access with neither an approval rule nor a budget on an argument it takes"
                ),
                at,
            );
        }
    }
    if m.credentials.token_ttl > Credentials::DEFAULT_TTL {
        add(
            FindingCode::LongTokenTtl,
            "",
            format!(
                "token_ttl is {}",
                units::format_duration(m.credentials.token_ttl)
            ),
            json!({"token_ttl": units::format_duration(m.credentials.token_ttl)}),
        );
    }
    if m.environment == Environment::Prod && !m.credentials.dpop_required {
        add(
            FindingCode::BearerTokensInProd,
            "",
            "set `credentials.dpop: required` to bind tokens to the agent's key".into(),
            json!({"environment": m.environment.as_str(), "dpop": "optional"}),
        );
    }
    if !m.delegation.to.is_empty() && m.forbid.is_empty() {
        add(
            FindingCode::DelegationWithoutForbids,
            "",
            "a delegate is bounded by this record only; list what must never happen under `forbid`"
                .into(),
            json!({"delegates": m.delegation.to.iter().map(|a| a.as_str()).collect::<Vec<_>>()}),
        );
    }
    out
}

/// Credential hygiene: long-lived secrets, shared identities, secrets where
/// keys would do.
pub fn for_credentials(row: &AgentRow, m: &Manifest, creds: &[CredentialRow]) -> Vec<Finding> {
    let active: Vec<&CredentialRow> = creds.iter().filter(|c| c.revoked_at.is_none()).collect();
    let now = jiff::Timestamp::now();
    let mut out = Vec::new();
    for c in &active {
        let ClientAuth::Secret { .. } = c.auth else {
            continue;
        };
        let since = c.rotated_at.unwrap_or(c.created_at);
        if now - since > SECRET_MAX_AGE {
            out.push(Finding::new(
                row,
                FindingCode::StaleClientSecret,
                c.client_id.as_str(),
                format!(
                    "`{}` has used the same secret since {since}; rotate it (`bridle agent credentials rotate`) or move to `private_key_jwt`",
                    c.client_id
                ),
                json!({"client_id": c.client_id.as_str(), "secret_since": crate::views::time::instant(since)}),
            ));
        }
    }
    let ids: Vec<&str> = active.iter().map(|c| c.client_id.as_str()).collect();
    if active.len() > MAX_ACTIVE_CLIENTS {
        out.push(Finding::new(
            row,
            FindingCode::ManyActiveCredentials,
            "",
            format!(
                "{} clients can get tokens for `{}`; one identity shared by several deployments cannot be told apart or revoked separately",
                active.len(),
                row.id
            ),
            json!({"clients": ids}),
        ));
    }
    let secrets: Vec<&str> = active
        .iter()
        .filter(|c| matches!(c.auth, ClientAuth::Secret { .. }))
        .map(|c| c.client_id.as_str())
        .collect();
    if m.environment == Environment::Prod && !secrets.is_empty() {
        out.push(Finding::new(
            row,
            FindingCode::SharedSecretInProd,
            "",
            format!(
                "{} client(s) use a client secret; register a public key instead (`private_key_jwt`), so no secret exists to leak",
                secrets.len()
            ),
            json!({"clients": secrets}),
        ));
    }
    out
}
