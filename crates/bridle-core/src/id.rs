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

        #[cfg(feature = "sqlx")]
        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            String: sqlx::Encode<'q, DB>,
        {
            fn encode(
                self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <String as sqlx::Encode<'q, DB>>::encode(self.0, buf)
            }

            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <String as sqlx::Encode<'q, DB>>::encode_by_ref(&self.0, buf)
            }
        }

        /// Decoding validates: a stored value that is not a valid id is a
        /// decode error (the column's name and the `IdError`), never a panic.
        #[cfg(feature = "sqlx")]
        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            String: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let s = <String as sqlx::Decode<'r, DB>>::decode(value)?;
                Ok(s.parse::<Self>()?)
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

/// `{agent}.{random}`: an OAuth client id as the server makes it, the agent's
/// id, a dot and base64url. Accepts the letters, digits and `-_.` of that
/// shape, bounded; anything else cannot name a credential.
fn is_client_id(s: &str) -> bool {
    let credential = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    credential || is_client_url(s)
}

/// The longest client metadata document URL accepted as a client id.
pub const CLIENT_URL_MAX: usize = 2048;

/// The shape of a client metadata document URL as a client id: `https://`
/// or `http://`, visible ASCII only, no fragment, bounded. Whether the
/// server fetches it is decided where it is fetched; this is only what
/// may be recorded as a token's client.
fn is_client_url(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://"))
        && s.len() <= CLIENT_URL_MAX
        && s.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
}

/// A JWT id. Bridle's own are base64url; those of DPoP proofs and client
/// assertions are the client's choice, and the server accepts (and records)
/// any non-empty one of at most 256 bytes, so that is the whole rule.
fn is_jti(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256
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
    /// An OAuth client id: an agent credential's (`swe-bot.Xy3…`), or the
    /// URL of an interactive client's metadata document
    /// (`https://client.example/oauth.json`, authorization code grant).
    ClientId,
    "client id",
    "letters, digits, `-`, `_` and `.`, or an http(s) URL",
    is_client_id
);
id_type!(
    /// A JWT id (`jti`): of an access token Bridle issued, or of a one-time
    /// DPoP proof or client assertion.
    Jti,
    "token id",
    "between 1 and 256 bytes",
    is_jti
);
id_type!(
    /// A signing key's id (`kid`).
    Kid,
    "key id",
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
    fn generated_ids_parse() {
        // The shapes the server generates: `{prefix}_` + base64url, a client
        // id `{agent}.` + base64url, a jti and a kid in plain base64url.
        assert!("apr_q-7Zx_AbCdEfGhIjKlMn".parse::<ApprovalId>().is_ok());
        assert!("dec_AbC-_9".parse::<DecisionId>().is_ok());
        assert!("elv_AbC-_9".parse::<ElevationId>().is_ok());
        assert!("swe-bot.Ab-_9xYzQ1w2".parse::<ClientId>().is_ok());
        assert!("Ab-_9xYzQ1w2Ab-_9xYzQ1".parse::<Jti>().is_ok());
        assert!("Ab-_9xYzQ1w2Ab-_".parse::<Kid>().is_ok());
        assert!(
            "https://client.example/oauth/client.json"
                .parse::<ClientId>()
                .is_ok()
        );
        for bad in ["https://a.example/x y", "https://a.example/#f", "ftp://a/b"] {
            assert!(bad.parse::<ClientId>().is_err(), "{bad} accepted");
        }
        for bad in ["", "a b", "a/b", "a:b"] {
            assert!(bad.parse::<ClientId>().is_err(), "{bad} accepted");
            assert!(bad.parse::<Kid>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_jti_is_what_the_server_accepts_from_clients() {
        // DPoP proofs and client assertions: any non-empty text up to 256 bytes.
        assert!("a jti with spaces: and / slashes".parse::<Jti>().is_ok());
        assert!("x".repeat(256).parse::<Jti>().is_ok());
        assert!("".parse::<Jti>().is_err());
        assert!("x".repeat(257).parse::<Jti>().is_err());
    }

    #[test]
    fn ids_round_trip_through_serde_and_reject_bad_values() {
        let id: AgentId = serde_json::from_str("\"swe-bot\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"swe-bot\"");
        let err = serde_json::from_str::<AgentId>("\"Bad Id\"").unwrap_err();
        assert!(err.to_string().contains("not a valid agent id"));
    }
}
