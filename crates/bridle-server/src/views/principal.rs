//! Principals' roles on the wire.

use bridle_store as store;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A principal's role (`roles` of `POST /v1/principals`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Auditor,
    Pep,
}

impl From<Role> for store::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => Self::Admin,
            Role::Auditor => Self::Auditor,
            Role::Pep => Self::Pep,
        }
    }
}

impl From<store::Role> for Role {
    fn from(r: store::Role) -> Self {
        match r {
            store::Role::Admin => Self::Admin,
            store::Role::Auditor => Self::Auditor,
            store::Role::Pep => Self::Pep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API spells each role as the store keeps it, both ways.
    #[test]
    fn roles_round_trip_through_their_stored_names() {
        for r in store::Role::ALL {
            let json = serde_json::to_value(Role::from(r)).ok();
            assert_eq!(json, Some(serde_json::Value::from(r.as_str())));
            let back: Option<Role> = json.and_then(|j| serde_json::from_value(j).ok());
            assert_eq!(back.map(store::Role::from), Some(r));
        }
    }
}
