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

/// An elevation's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ElevationState {
    Pending,
    Active,
    Ended,
    Denied,
}

impl From<store::ElevationState> for ElevationState {
    fn from(s: store::ElevationState) -> Self {
        use store::ElevationState as S;
        match s {
            S::Pending => Self::Pending,
            S::Active => Self::Active,
            S::Ended => Self::Ended,
            S::Denied => Self::Denied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialize_as_the_store_names_them() {
        use store::ElevationState as S;
        for s in [S::Pending, S::Active, S::Ended, S::Denied] {
            assert_eq!(
                serde_json::to_value(ElevationState::from(s)).ok(),
                Some(serde_json::Value::from(s.as_str()))
            );
        }
    }
}
