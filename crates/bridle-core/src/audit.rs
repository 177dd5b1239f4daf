//! The audit record: event types, the hash chain that makes the log
//! tamper-evident, and keyed hashing of sensitive argument values. Storage
//! lives elsewhere; this module only defines what is written and how it is
//! checked.
//!
//! Each event's body is serialised once, when it is sealed; that exact text
//! is stored and its `hash` is SHA-256 over the previous event's hash, its
//! `seq` and those bytes, so altering, removing or reordering any record
//! breaks the chain there. Verification never re-serialises (a value that
//! does not survive a JSON round trip cannot poison the chain). Signed
//! checkpoints of `{seq, head, time}` ([`verify`]) catch what a chain alone
//! cannot: a truncated log, or one rewritten with every later hash
//! recomputed.

mod verify;

pub use verify::{Checkpoint, Problem, ProblemKind, SignedCheckpoint, Verification, Verifier};

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Decision,
    Outcome,
    Approval,
    Elevation,
    Credential,
    Token,
    Lifecycle,
    Manifest,
    Principal,
    /// Failed authentication, aggregated per credential and source.
    Authentication,
    /// A posture finding opened or resolved.
    Finding,
}

impl EventType {
    pub const ALL: [EventType; 11] = [
        Self::Decision,
        Self::Outcome,
        Self::Approval,
        Self::Elevation,
        Self::Credential,
        Self::Token,
        Self::Lifecycle,
        Self::Manifest,
        Self::Principal,
        Self::Authentication,
        Self::Finding,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decision => "decision",
            Self::Outcome => "outcome",
            Self::Approval => "approval",
            Self::Elevation => "elevation",
            Self::Credential => "credential",
            Self::Token => "token",
            Self::Lifecycle => "lifecycle",
            Self::Manifest => "manifest",
            Self::Principal => "principal",
            Self::Authentication => "authentication",
            Self::Finding => "finding",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// What an event says, before it has a place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBody {
    pub time: Timestamp,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Who acted: `principal:alice`, `agent:swe-bot`, `system`.
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub action: Option<String>,
    /// The effect of a `decision` event.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub decision: Option<crate::decision::Effect>,
    /// Why, for a `decision` event: the decision's reasons as answered.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reasons: Option<Vec<crate::decision::Reason>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub args: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retrievals: Option<Vec<String>>,
    /// Anything else the event type carries (ids, states, comments).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<serde_json::Value>,
}

impl EventBody {
    /// The id of the decision a `decision` event records
    /// (`detail.decision_id`); the store indexes events by it.
    pub fn decision_id(&self) -> Option<&str> {
        if self.kind != EventType::Decision {
            return None;
        }
        self.detail.as_ref()?.get("decision_id")?.as_str()
    }

    pub fn new(kind: EventType, time: Timestamp, actor: impl Into<String>) -> Self {
        Self {
            time,
            kind,
            actor: actor.into(),
            agent: None,
            action: None,
            decision: None,
            reasons: None,
            args: None,
            resource: None,
            retrievals: None,
            detail: None,
        }
    }
}

/// An event in its place in the chain, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: u64,
    #[serde(flatten)]
    pub body: EventBody,
    pub prev_hash: String,
    pub hash: String,
}

/// How a stored event's hash was computed (the `format` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFormat {
    /// Format 1, written before checkpoints existed: SHA-256 over the
    /// previous hash and the JSON text `{"seq":N,"body":BODY}`. That release
    /// built this text by re-serialising the body, which yields exactly the
    /// stored body text, so it is checked over the stored bytes too
    /// ([`hash_legacy`]); kept to verify old rows, never written.
    Legacy,
    /// Format 2: SHA-256 over a tag, the previous hash, the `seq` and exactly
    /// the stored body text ([`hash_exact`]). Verifying never re-serialises.
    Exact,
    /// A value no release writes: such a row never verifies.
    Unknown(i64),
}

impl HashFormat {
    pub fn from_number(n: i64) -> Self {
        match n {
            1 => Self::Legacy,
            2 => Self::Exact,
            other => Self::Unknown(other),
        }
    }

    pub fn number(self) -> i64 {
        match self {
            Self::Legacy => 1,
            Self::Exact => 2,
            Self::Unknown(n) => n,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the event cannot be serialised: {0}")]
    Serialise(#[source] serde_json::Error),
    #[error("stored audit event {seq} is not a readable event: {source}")]
    Unreadable {
        seq: u64,
        #[source]
        source: serde_json::Error,
    },
}

/// An event exactly as it is stored: `body` is the text the hash covers,
/// serialised once when the event was sealed and never again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub format: HashFormat,
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

impl StoredEvent {
    /// Serialise `body` (once) and chain it after the event with hash
    /// `prev_hash`.
    pub fn seal(seq: u64, body: &EventBody, prev_hash: &str) -> Result<Self, AuditError> {
        let text = serde_json::to_string(body).map_err(AuditError::Serialise)?;
        Ok(Self {
            seq,
            format: HashFormat::Exact,
            hash: hash_exact(seq, &text, prev_hash),
            body: text,
            prev_hash: prev_hash.to_owned(),
        })
    }

    /// Whether the stored hash matches the stored content and `prev_hash`.
    pub fn is_intact(&self) -> bool {
        match self.format {
            HashFormat::Exact => hash_exact(self.seq, &self.body, &self.prev_hash) == self.hash,
            HashFormat::Legacy => hash_legacy(self.seq, &self.body, &self.prev_hash) == self.hash,
            HashFormat::Unknown(_) => false,
        }
    }

    /// The event as the API shows it (the body parsed).
    pub fn event(&self) -> Result<AuditEvent, AuditError> {
        let body = serde_json::from_str(&self.body).map_err(|source| AuditError::Unreadable {
            seq: self.seq,
            source,
        })?;
        Ok(AuditEvent {
            seq: self.seq,
            body,
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        })
    }
}

/// The hash of a format-2 event: hex SHA-256 of
/// `bridle-audit-v2\n{prev_hash}\n{seq}\n{body}`, `body` being exactly the
/// stored text. Anyone holding the stored rows can recompute it.
pub fn hash_exact(seq: u64, body: &str, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"bridle-audit-v2\n");
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(seq.to_string().as_bytes());
    h.update(b"\n");
    h.update(body.as_bytes());
    hex(&h.finalize())
}

/// The hash of a format-1 event: hex SHA-256 of
/// `{prev_hash}\n{"seq":N,"body":BODY}`, `BODY` being exactly the stored
/// text (the previous release serialised the same object it stored).
pub fn hash_legacy(seq: u64, body: &str, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n{\"seq\":");
    h.update(seq.to_string().as_bytes());
    h.update(b",\"body\":");
    h.update(body.as_bytes());
    h.update(b"}");
    hex(&h.finalize())
}

/// Replace the values of `sensitive` arguments by keyed hashes
/// (`hmac-sha256:<hex>`), so an investigator holding the key can match a
/// value without the log holding it.
pub fn redact_args(
    args: &serde_json::Map<String, serde_json::Value>,
    sensitive: &[&str],
    key: &[u8],
) -> serde_json::Map<String, serde_json::Value> {
    args.iter()
        .map(|(k, v)| {
            if sensitive.contains(&k.as_str()) {
                (k.clone(), serde_json::Value::String(keyed_hash(key, v)))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

/// `hmac-sha256:<hex>` of the value's canonical JSON.
pub fn keyed_hash(key: &[u8], value: &serde_json::Value) -> String {
    // A `Value`'s compact `Display` is its JSON text and cannot fail (every
    // key is a string): no serialisation error can turn into hashing "".
    let bytes = value.to_string();
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        // HMAC accepts keys of any length; this branch cannot be taken.
        return "hmac-sha256:".to_owned();
    };
    mac.update(bytes.as_bytes());
    format!("hmac-sha256:{}", hex(&mac.finalize().into_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_values_are_keyed_hashes_that_match_across_events() {
        let args = serde_json::json!({"body": "card 4111", "case": 7});
        let map = args.as_object().unwrap();
        let a = redact_args(map, &["body"], b"k1");
        let b = redact_args(map, &["body"], b"k1");
        let c = redact_args(map, &["body"], b"k2");
        assert_eq!(a, b);
        assert_ne!(a["body"], c["body"]);
        assert!(a["body"].as_str().unwrap().starts_with("hmac-sha256:"));
        assert!(!a["body"].as_str().unwrap().contains("4111"));
        assert_eq!(a["case"], 7);
    }
}
