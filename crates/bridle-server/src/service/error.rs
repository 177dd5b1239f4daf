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
    /// A blocking task (parsing, compiling) did not finish.
    #[error("a background task failed: {0}")]
    Task(String),
}

impl ServiceError {
    pub(crate) fn unknown_decision(id: &DecisionId) -> Self {
        Self::DecisionNotFound(id.to_string())
    }
}
