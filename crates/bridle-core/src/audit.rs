//! The audit record: event types, the hash chain that makes the log
//! tamper-evident, and keyed hashing of sensitive argument values. Storage
//! lives elsewhere; this module only defines what is written and how it is
//! checked.
//!
//! Each event's `hash` is SHA-256 over the previous event's hash and the
//! canonical JSON of the event's content (its `seq` included), so altering,
//! removing or reordering any record breaks every hash after it.

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
}

impl EventType {
    pub const ALL: [EventType; 10] = [
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
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub decision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reasons: Option<serde_json::Value>,
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

/// An event in its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: u64,
    #[serde(flatten)]
    pub body: EventBody,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEvent {
    /// Place `body` after the event with hash `prev_hash`.
    pub fn chain(seq: u64, body: EventBody, prev_hash: &str) -> Self {
        let hash = hash_of(seq, &body, prev_hash);
        Self {
            seq,
            body,
            prev_hash: prev_hash.to_owned(),
            hash,
        }
    }

    /// Whether this event's hash matches its content and `prev_hash`.
    pub fn is_intact(&self) -> bool {
        hash_of(self.seq, &self.body, &self.prev_hash) == self.hash
    }
}

fn hash_of(seq: u64, body: &EventBody, prev_hash: &str) -> String {
    // Deterministic: struct fields serialize in declaration order and a stored
    // body is re-read with its key order preserved.
    let content = serde_json::json!({ "seq": seq, "body": body });
    let bytes = serde_json::to_vec(&content).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(&bytes);
    hex(&h.finalize())
}

/// The result of checking a whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub ok: bool,
    pub events: u64,
    /// Hash of the last intact event (the genesis value for an empty log).
    pub head: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
}

/// Incremental chain verifier: feed events in `seq` order.
#[derive(Debug, Clone)]
pub struct Verifier {
    expected_seq: u64,
    head: String,
    events: u64,
    first_bad: Option<u64>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    pub fn new() -> Self {
        Self {
            expected_seq: 1,
            head: GENESIS.to_owned(),
            events: 0,
            first_bad: None,
        }
    }

    pub fn push(&mut self, event: &AuditEvent) {
        self.events += 1;
        if self.first_bad.is_some() {
            return;
        }
        if event.seq != self.expected_seq || event.prev_hash != self.head || !event.is_intact() {
            // A gap in `seq` means a deleted record: the first missing one is bad.
            self.first_bad = Some(event.seq.min(self.expected_seq));
            return;
        }
        self.head.clone_from(&event.hash);
        self.expected_seq += 1;
    }

    /// A stored record that cannot even be read back (its content was
    /// altered into something that is not an event).
    pub fn push_unreadable(&mut self, seq: u64) {
        self.events += 1;
        if self.first_bad.is_none() {
            self.first_bad = Some(seq.min(self.expected_seq));
        }
    }

    pub fn finish(self) -> Verification {
        Verification {
            ok: self.first_bad.is_none(),
            events: self.events,
            head: self.head,
            first_bad_seq: self.first_bad,
        }
    }
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
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        // HMAC accepts keys of any length; this branch cannot be taken.
        return "hmac-sha256:".to_owned();
    };
    mac.update(&bytes);
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

    fn body(n: i64) -> EventBody {
        let mut b = EventBody::new(
            EventType::Decision,
            Timestamp::from_second(1_800_000_000 + n).unwrap(),
            "agent:a",
        );
        b.action = Some(format!("tool.{n}"));
        b
    }

    fn chain(n: u64) -> Vec<AuditEvent> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let e = AuditEvent::chain(seq, body(seq as i64), &prev);
                prev.clone_from(&e.hash);
                e
            })
            .collect()
    }

    fn verify(events: &[AuditEvent]) -> Verification {
        let mut v = Verifier::new();
        events.iter().for_each(|e| v.push(e));
        v.finish()
    }

    #[test]
    fn an_intact_chain_verifies() {
        let events = chain(5);
        let r = verify(&events);
        assert!(r.ok);
        assert_eq!(r.events, 5);
        assert_eq!(r.head, events[4].hash);
        assert!(verify(&[]).ok);
    }

    #[test]
    fn altering_a_record_is_pinpointed() {
        let mut events = chain(5);
        events[2].body.action = Some("tool.evil".into());
        let r = verify(&events);
        assert!(!r.ok);
        assert_eq!(r.first_bad_seq, Some(3));
    }

    #[test]
    fn deleting_or_reordering_is_detected() {
        let mut events = chain(5);
        events.remove(1);
        assert_eq!(verify(&events).first_bad_seq, Some(2));
        let mut events = chain(5);
        events.swap(3, 4);
        assert_eq!(verify(&events).first_bad_seq, Some(4));
    }

    #[test]
    fn recomputing_one_hash_does_not_hide_tampering() {
        let mut events = chain(4);
        events[1].body.action = Some("tool.evil".into());
        events[1].hash = hash_of(2, &events[1].body, &events[1].prev_hash);
        assert_eq!(verify(&events).first_bad_seq, Some(3));
    }

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
