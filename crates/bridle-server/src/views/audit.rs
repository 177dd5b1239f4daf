//! The audit log as the API shows it: events, the verification of the
//! chain and its signed checkpoints.

use bridle_core::audit as core;
use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use super::decision::{Effect, Reason};

/// An event of the hash-chained audit log.
// The fields between `seq` and `prev_hash` are the hashed body as the log
// stores it, spelled as the domain serialises it (`args` and `detail` as
// stored), so the API shows what was hashed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditEvent {
    pub seq: u64,
    /// RFC 3339.
    #[schema(value_type = String)]
    pub time: Timestamp,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Who acted: `principal:alice`, `agent:swe-bot`, `system`.
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Effect>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<Reason>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub args: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrievals: Option<Vec<String>>,
    /// Anything else the event type carries (ids, states, comments).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<core::AuditEvent> for AuditEvent {
    fn from(e: core::AuditEvent) -> Self {
        let core::AuditEvent {
            seq,
            body,
            prev_hash,
            hash,
        } = e;
        let core::EventBody {
            time,
            kind,
            actor,
            agent,
            action,
            decision,
            reasons,
            args,
            resource,
            retrievals,
            detail,
        } = body;
        Self {
            seq,
            time,
            kind: kind.into(),
            actor,
            agent,
            action,
            decision: decision.map(Effect::from),
            reasons: reasons.map(|r| r.into_iter().map(Reason::from).collect()),
            args,
            resource,
            retrievals,
            detail,
            prev_hash,
            hash,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
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
    Authentication,
    Finding,
}

impl From<core::EventType> for EventType {
    fn from(t: core::EventType) -> Self {
        use core::EventType as T;
        match t {
            T::Decision => Self::Decision,
            T::Outcome => Self::Outcome,
            T::Approval => Self::Approval,
            T::Elevation => Self::Elevation,
            T::Credential => Self::Credential,
            T::Token => Self::Token,
            T::Lifecycle => Self::Lifecycle,
            T::Manifest => Self::Manifest,
            T::Principal => Self::Principal,
            T::Authentication => Self::Authentication,
            T::Finding => Self::Finding,
        }
    }
}

// The body of `GET /v1/audit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvents {
    pub events: Vec<AuditEvent>,
}

/// The result of checking the whole chain against the stored head and every
/// signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Verification {
    pub ok: bool,
    /// How many events were checked.
    pub events: u64,
    /// Hash of the last event of the intact prefix (the genesis value for an
    /// empty log).
    pub head: String,
    /// The first event that does not verify, when `ok` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    /// Every `seq` reported, ascending (empty when `ok`).
    pub broken: Vec<u64>,
    /// What is wrong at each reported `seq`.
    pub problems: Vec<VerificationProblem>,
    /// The latest signed checkpoint the chain was checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_seq: Option<u64>,
}

impl From<core::Verification> for Verification {
    fn from(v: core::Verification) -> Self {
        let core::Verification {
            ok,
            events,
            head,
            first_bad_seq,
            broken,
            problems,
            checkpoint_seq,
        } = v;
        Self {
            ok,
            events,
            head,
            first_bad_seq,
            broken,
            problems: problems
                .into_iter()
                .map(VerificationProblem::from)
                .collect(),
            checkpoint_seq,
        }
    }
}

/// One finding of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VerificationProblem {
    pub seq: u64,
    pub kind: VerificationProblemKind,
}

impl From<core::Problem> for VerificationProblem {
    fn from(p: core::Problem) -> Self {
        let core::Problem { seq, kind } = p;
        Self {
            seq,
            kind: kind.into(),
        }
    }
}

/// `altered` (content does not match its hash), `unlinked` (`prev_hash` is
/// not the previous record's hash), `missing` (deleted), `out_of_order`,
/// `downgraded` (an old-format record after a new one), `checkpoint_mismatch`
/// (hash differs from a signed checkpoint), `head_mismatch` (differs from the
/// stored head), `truncated` (the log ends before a checkpoint or the head),
/// `bad_checkpoint` (its signature or fields do not verify).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationProblemKind {
    Altered,
    Unlinked,
    Missing,
    OutOfOrder,
    Downgraded,
    CheckpointMismatch,
    HeadMismatch,
    Truncated,
    BadCheckpoint,
}

impl From<core::ProblemKind> for VerificationProblemKind {
    fn from(k: core::ProblemKind) -> Self {
        use core::ProblemKind as K;
        match k {
            K::Altered => Self::Altered,
            K::Unlinked => Self::Unlinked,
            K::Missing => Self::Missing,
            K::OutOfOrder => Self::OutOfOrder,
            K::Downgraded => Self::Downgraded,
            K::CheckpointMismatch => Self::CheckpointMismatch,
            K::HeadMismatch => Self::HeadMismatch,
            K::Truncated => Self::Truncated,
            K::BadCheckpoint => Self::BadCheckpoint,
        }
    }
}

/// A signed checkpoint of the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditCheckpoint {
    /// The event whose hash is `head`.
    pub seq: u64,
    pub head: String,
    /// RFC 3339: when it was signed.
    #[schema(value_type = String)]
    pub time: Timestamp,
    /// Compact JWS (EdDSA, `typ: bridle-checkpoint+jwt`, `kid`) whose payload
    /// is `{seq, head, time}`.
    pub jws: String,
}

impl From<core::SignedCheckpoint> for AuditCheckpoint {
    fn from(c: core::SignedCheckpoint) -> Self {
        let core::SignedCheckpoint {
            seq,
            head,
            time,
            jws,
        } = c;
        Self {
            seq,
            head,
            time,
            jws,
        }
    }
}

// The body of `GET /v1/audit/checkpoints`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Checkpoints {
    pub checkpoints: Vec<AuditCheckpoint>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event shows exactly the fields the log hashed, spelled as the
    /// domain serializes them, so a client recomputing `hash` over them gets
    /// the stored value.
    #[test]
    fn an_event_serializes_like_the_domain_event() {
        let mut body = core::EventBody::new(
            core::EventType::Decision,
            Timestamp::UNIX_EPOCH,
            "agent:swe-bot",
        );
        body.agent = Some("swe-bot".into());
        body.decision = Some(bridle_core::Effect::Deny);
        body.reasons = Some(vec![bridle_core::Reason {
            code: bridle_core::ReasonCode::NotGranted,
            message: "no".into(),
            source: None,
        }]);
        body.detail = Some(serde_json::json!({"decision_id": "dec_1"}));
        let sparse = core::EventBody::new(core::EventType::Token, Timestamp::UNIX_EPOCH, "system");
        for body in [body, sparse] {
            let event = core::AuditEvent {
                seq: 7,
                body,
                prev_hash: "a".repeat(64),
                hash: "b".repeat(64),
            };
            assert_eq!(
                serde_json::to_value(AuditEvent::from(event.clone())).ok(),
                serde_json::to_value(&event).ok()
            );
        }
    }

    #[test]
    fn event_types_serialize_as_the_domain_spells_them() {
        for t in core::EventType::ALL {
            assert_eq!(
                serde_json::to_value(EventType::from(t)).ok(),
                Some(serde_json::Value::from(t.as_str()))
            );
        }
    }

    #[test]
    fn a_verification_serializes_like_the_domain_one() {
        let broken = core::Verification {
            ok: false,
            events: 3,
            head: "h".into(),
            first_bad_seq: Some(2),
            broken: vec![2],
            problems: vec![core::Problem {
                seq: 2,
                kind: core::ProblemKind::CheckpointMismatch,
            }],
            checkpoint_seq: Some(1),
        };
        let ok = core::Verification {
            ok: true,
            events: 3,
            head: "h".into(),
            first_bad_seq: None,
            broken: vec![],
            problems: vec![],
            checkpoint_seq: None,
        };
        for v in [broken, ok] {
            assert_eq!(
                serde_json::to_value(Verification::from(v.clone())).ok(),
                serde_json::to_value(&v).ok()
            );
        }
    }
}
