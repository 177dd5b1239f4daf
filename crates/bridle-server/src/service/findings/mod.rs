//! Posture findings per agent, mapped to OWASP Non-Human Identity Top 10
//! (2025), OWASP Top 10 for Agentic Applications (2026) and NIST AI RMF.
//! The kinds are in [`codes`]; the rules that see the record alone in
//! [`record`], those that need its history in [`history`]. The posture
//! sweep ([`crate::posture`]) runs them on a schedule and on events and
//! keeps, audits and announces what opens and resolves.

mod codes;
pub mod history;
pub mod record;

use bridle_store::{AgentRow, CredentialStore as _, FindingRow, FindingStore as _};
pub use codes::{FindingCode, Severity};
pub use record::{for_agent, for_credentials};

use super::ServiceError;
use crate::state::AppState;

/// A finding about one agent: what kind, about what within it, and the
/// particulars.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub agent: bridle_core::id::AgentId,
    pub code: FindingCode,
    /// What it is about within the agent (a tool, a client id, a
    /// delegate), or `""` for the agent as a whole.
    pub subject: String,
    pub detail: String,
    /// The facts it rests on (paths, counts, audit sequence numbers).
    pub evidence: serde_json::Value,
}

impl Finding {
    pub fn new(
        row: &AgentRow,
        code: FindingCode,
        subject: &str,
        detail: String,
        evidence: serde_json::Value,
    ) -> Self {
        Self {
            agent: row.id.clone(),
            code,
            subject: subject.to_owned(),
            detail,
            evidence,
        }
    }
}

/// The agent's findings as the posture sweep last kept them (the ones
/// open, with when they opened).
pub async fn open(
    state: &AppState,
    agent: &bridle_core::id::AgentId,
) -> Result<Vec<FindingRow>, ServiceError> {
    Ok(state.store().open_findings(Some(agent)).await?)
}

/// Every finding about `row` now: its record and manifest, its
/// credentials, and what its history shows.
pub async fn of_agent(state: &AppState, row: &AgentRow) -> Result<Vec<Finding>, ServiceError> {
    let now = jiff::Timestamp::now();
    let config = &state.config.posture;
    let flags = super::agents::flags(state, row).await?;
    let flags: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
    let manifest = state.compiled(row).await?.manifest().clone();
    let mut out = for_agent(row, &manifest, &flags);
    let creds = state.store().credentials(&row.id).await?;
    out.extend(for_credentials(row, &manifest, &creds));
    out.extend(history::auth_failures(state, row, now).await?);
    out.extend(history::usage(state, row, &manifest, config, now).await?);
    out.extend(history::delegates(state, row, &manifest).await?);
    out.extend(history::structuring(state, row, &manifest, config, now).await?);
    Ok(out)
}
