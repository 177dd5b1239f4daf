//! Validated identifiers. No `String` id crosses a module boundary: each kind
//! of id is its own type, parsed once, displayed as given.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {kind}: expected {expected}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $expected:literal, $valid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                let valid: fn(&str) -> bool = $valid;
                if valid(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError { kind: $kind, value: s.to_owned(), expected: $expected })
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                s.parse()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// `[a-z0-9][a-z0-9-]{0,62}`: the shape of agent ids.
fn is_slug(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() <= 63
        && bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Principal and group ids are a little looser than agent ids (people have dots
/// and underscores in their names) but never contain spaces, quotes or colons.
fn is_principal(s: &str) -> bool {
    s.len() <= 128
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

/// Opaque server-generated ids: printable, no whitespace, bounded.
fn is_opaque(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// `[A-Za-z0-9_.:/-]+`: the shape of tool (action) names.
pub fn is_tool_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-'))
}

id_type!(
    /// An agent's id. Never reused, even after retirement.
    AgentId,
    "agent id",
    "lowercase letters, digits and `-`, starting with a letter or digit, at most 63 characters",
    is_slug
);
id_type!(
    /// A human principal's id.
    PrincipalId,
    "principal id",
    "letters, digits and `-_.@`, starting with a letter or digit",
    is_principal
);
id_type!(
    /// An approver group's name.
    GroupName,
    "group name",
    "letters, digits and `-_.@`, starting with a letter or digit",
    is_principal
);
id_type!(
    /// A human-approval request.
    ApprovalId,
    "approval id",
    "letters, digits, `-` and `_`",
    is_opaque
);
id_type!(
    /// One decision, as answered and audited.
    DecisionId,
    "decision id",
    "letters, digits, `-` and `_`",
    is_opaque
);
id_type!(
    /// A just-in-time elevation grant.
    ElevationId,
    "elevation id",
    "letters, digits, `-` and `_`",
    is_opaque
);
id_type!(
    /// A tool (action) name such as `github.create_pull_request`.
    ToolName,
    "tool name",
    "letters, digits and `_.:/-`",
    is_tool_name
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ids_follow_the_manifest_shape() {
        assert!("procurement-bot".parse::<AgentId>().is_ok());
        assert!("a".parse::<AgentId>().is_ok());
        assert!("0day".parse::<AgentId>().is_ok());
        for bad in ["", "-x", "Upper", "with space", "a_b", &"a".repeat(64)] {
            assert!(bad.parse::<AgentId>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn tool_names_allow_namespaces_but_not_globs_or_quotes() {
        assert!("github.create_pull_request".parse::<ToolName>().is_ok());
        assert!("mcp:files/read-1".parse::<ToolName>().is_ok());
        for bad in ["", "a*", "a b", "a\"b", "a\\b"] {
            assert!(bad.parse::<ToolName>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn ids_round_trip_through_serde_and_reject_bad_values() {
        let id: AgentId = serde_json::from_str("\"swe-bot\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"swe-bot\"");
        let err = serde_json::from_str::<AgentId>("\"Bad Id\"").unwrap_err();
        assert!(err.to_string().contains("not a valid agent id"));
    }
}
