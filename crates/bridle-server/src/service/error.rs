//! What a service step can fail with.

use bridle_core::id::{AgentId, DecisionId};
use bridle_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An agent's stored manifest no longer parses or compiles (an upgrade
    /// tightened a rule, or the row was edited by hand): fail closed.
    #[error("the stored manifest of `{agent}` no longer loads: {reason}")]
    StoredManifest { agent: AgentId, reason: String },
    /// No decision with this id, or not one the caller's agent took part in.
    #[error("decision `{0}` not found")]
    DecisionNotFound(String),
    /// The caller may not make this change (403).
    #[error("{0}")]
    Refused(String),
    /// The change conflicts with the record's state (409): a retired agent.
    #[error("{0}")]
    Conflict(String),
    /// The path and the body name different agents (400).
    #[error("{0}")]
    Mismatch(String),
    /// The manifest does not load (422, with paths and lines).
    #[error("the manifest does not load")]
    Manifest(bridle_core::ManifestErrors),
    /// The manifest loads but cannot be compiled into policies.
    #[error("the manifest cannot be compiled: {0}")]
    Compile(String),
    /// The manifest's owner is not an active principal (422 at `owner`).
    #[error("`{0}` is not an active principal")]
    OwnerInactive(String),
    /// No such record (404): an agent, an approval.
    #[error("{0}")]
    NotFound(String),
    /// A request the record cannot satisfy, at one field (422): an unknown
    /// elevation, a duration over its maximum.
    #[error("{title}")]
    Invalid {
        title: &'static str,
        field: &'static str,
        detail: String,
    },
    /// A fresh id could not be drawn (the system's random source failed).
    #[error(transparent)]
    Id(#[from] bridle_core::id::IdError),
    /// A step that cannot fail in practice failed (500, text logged only).
    #[error("{0}")]
    Internal(String),
    /// No such version of the agent (404).
    #[error("version {0} not found")]
    VersionNotFound(i64),
    /// A blocking task (parsing, compiling) did not finish.
    #[error("a background task failed: {0}")]
    Task(String),
}

impl From<crate::kek::KekError> for ServiceError {
    fn from(e: crate::kek::KekError) -> Self {
        match e {
            crate::kek::KekError::Store(e) => Self::Store(e),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl ServiceError {
    pub(crate) fn invalid(
        title: &'static str,
        field: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            title,
            field,
            detail: detail.into(),
        }
    }

    pub(crate) fn unknown_decision(id: &DecisionId) -> Self {
        Self::DecisionNotFound(id.to_string())
    }
}
