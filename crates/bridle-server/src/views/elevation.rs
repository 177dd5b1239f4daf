//! Elevations as the API shows them.

use bridle_store as store;
use serde::Serialize;
use utoipa::ToSchema;

/// The answer to `POST /v1/agents/{id}/elevations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ElevationCreated {
    #[schema(example = "elv_8Hq2mZ0cT4ra")]
    pub id: String,
    /// `active` when granted at once (`auto_grant_when`), else `pending`.
    #[schema(example = "pending")]
    pub state: ElevationState,
    /// The approval that grants it, when pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// When it ends, when active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl From<store::Elevation> for ElevationCreated {
    fn from(e: store::Elevation) -> Self {
        Self {
            id: e.id.to_string(),
            state: e.state.into(),
            approval_id: e.approval_id.as_ref().map(ToString::to_string),
            expires_at: e.expires_at.map(super::time::instant),
        }
    }
}

/// An elevation as `GET /v1/agents/{id}/elevations` and its `end` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ElevationView {
    #[schema(example = "elv_8Hq2mZ0cT4ra")]
    pub id: String,
    /// The manifest's `elevation` name.
    #[schema(example = "identity-write")]
    pub name: String,
    pub state: ElevationState,
    /// Why it was requested.
    pub reason: String,
    /// Who asked, as an audit actor (`agent:ir-bot`, `principal:dave`).
    #[schema(example = "agent:ir-bot")]
    pub requested_by: String,
    /// The approval that grants it, when it needs one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    pub created_at: String,
    /// When it ends (or ended) by itself, once granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// When it was ended early, denied, or its agent retired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Who ended it early, as an audit actor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    /// Why it was ended early.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

impl From<store::Elevation> for ElevationView {
    fn from(e: store::Elevation) -> Self {
        Self {
            id: e.id.to_string(),
            name: e.name,
            state: e.state.into(),
            reason: e.reason,
            requested_by: e.requested_by,
            approval_id: e.approval_id.as_ref().map(ToString::to_string),
            created_at: super::time::instant(e.created_at),
            expires_at: e.expires_at.map(super::time::instant),
            ended_at: e.ended_at.map(super::time::instant),
            ended_by: e.ended_by,
            end_reason: e.end_reason,
        }
    }
}

/// The answer to `GET /v1/agents/{id}/elevations`: oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ElevationList {
    pub elevations: Vec<ElevationView>,
}

/// An elevation's state: `expired` once an active one passed its
/// `expires_at`; `ended` when ended early or its agent was retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ElevationState {
    Pending,
    Active,
    Ended,
    Denied,
    Expired,
}

impl From<store::ElevationState> for ElevationState {
    fn from(s: store::ElevationState) -> Self {
        use store::ElevationState as S;
        match s {
            S::Pending => Self::Pending,
            S::Active => Self::Active,
            S::Ended => Self::Ended,
            S::Denied => Self::Denied,
            S::Expired => Self::Expired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialize_as_the_store_names_them() {
        use store::ElevationState as S;
        for s in [S::Pending, S::Active, S::Ended, S::Denied, S::Expired] {
            assert_eq!(
                serde_json::to_value(ElevationState::from(s)).ok(),
                Some(serde_json::Value::from(s.as_str()))
            );
        }
    }
}
