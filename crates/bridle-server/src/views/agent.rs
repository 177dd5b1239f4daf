//! The agent record of the API: a registry row with its derived flags.

use bridle_core::engine::AgentState as DomainState;
use bridle_store::AgentRow;
use serde::Serialize;

use super::time::instant;
use utoipa::ToSchema;

/// The agent record of the API contract.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AgentRecord {
    #[schema(example = "procurement-bot")]
    pub id: String,
    /// Increases with every applied manifest.
    pub version: i64,
    pub state: AgentState,
    /// Why the agent is in its state (suspension or retirement reason).
    #[schema(required = true)]
    pub state_reason: Option<String>,
    /// Who made the last lifecycle change (`principal:ID`, or `system` for
    /// automatic containment); absent for records from before it was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "principal:admin")]
    pub state_by: Option<String>,
    /// The accountable owner (a principal id).
    pub owner: String,
    pub environment: String,
    /// The manifest's expiry date (`YYYY-MM-DD`).
    pub expires: String,
    pub flags: Vec<AgentFlag>,
    /// The manifest, as JSON.
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
    #[schema(required = true)]
    pub last_review_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl AgentRecord {
    /// The record of `row`, with the flags derived for it now.
    pub fn new(row: AgentRow, flags: Vec<AgentFlag>) -> Self {
        // Every field, so a new one is a decision here: `source` (the
        // manifest text as applied) is not part of the record.
        let AgentRow {
            id,
            version,
            state,
            state_reason,
            state_by,
            owner,
            environment,
            expires,
            manifest,
            source: _,
            last_review_at,
            created_at,
            updated_at,
        } = row;
        Self {
            id: id.to_string(),
            version,
            state: state.into(),
            state_reason,
            state_by: state_by.map(|by| by.actor),
            owner: owner.to_string(),
            environment,
            expires: expires.to_string(),
            flags,
            manifest,
            last_review_at: last_review_at.map(instant),
            created_at: instant(created_at),
            updated_at: instant(updated_at),
        }
    }
}

/// An agent's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    Active,
    Suspended,
    Retired,
    /// A new agent whose first version awaits change approval.
    Proposed,
}

impl From<DomainState> for AgentState {
    fn from(s: DomainState) -> Self {
        match s {
            DomainState::Active => Self::Active,
            DomainState::Suspended => Self::Suspended,
            DomainState::Retired => Self::Retired,
            DomainState::Proposed => Self::Proposed,
        }
    }
}

/// A derived flag of an agent record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentFlag {
    Expired,
    ReviewOverdue,
    Orphaned,
}

impl AgentFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::ReviewOverdue => "review_overdue",
            Self::Orphaned => "orphaned",
        }
    }
}

// The body of `GET /v1/agents`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_states_serialize_as_named() {
        for f in [
            AgentFlag::Expired,
            AgentFlag::ReviewOverdue,
            AgentFlag::Orphaned,
        ] {
            assert_eq!(
                serde_json::to_value(f).ok(),
                Some(serde_json::Value::from(f.as_str()))
            );
        }
        for s in [
            DomainState::Active,
            DomainState::Suspended,
            DomainState::Retired,
        ] {
            assert_eq!(
                serde_json::to_value(AgentState::from(s)).ok(),
                Some(serde_json::Value::from(s.as_str()))
            );
        }
    }
}
