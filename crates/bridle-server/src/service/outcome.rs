//! Outcomes: what happened after an allowed action, reported by the agent
//! or the `pep` that enforced it, recorded against the decision it names.
//! Only a decision that exists and that the reporting agent took part in
//! (the agent it was asked for, or one of that decision's delegation chain)
//! can be reported on; any other id is unknown to the caller.

use bridle_core::audit::EventType;
use bridle_core::id::DecisionId;
use bridle_core::resource::Resource;
use bridle_store::AuditRead;
use serde_json::{Map, Value, json};

use super::{ServiceError, Via};
use crate::auth::AgentCaller;
use crate::state::AppState;

/// How the action went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

/// Record the outcome of decision `id`; `retrievals` are what the agent
/// retrieved (obligation `log_retrieval`).
pub async fn record(
    state: &AppState,
    agent: &AgentCaller,
    via: &Via,
    id: &DecisionId,
    status: Status,
    retrievals: Vec<Resource>,
) -> Result<(), ServiceError> {
    let head = agent.row();
    let Some(decided) = state.store().decision_event(id).await? else {
        return Err(ServiceError::unknown_decision(id));
    };
    if !took_part(agent, &decided.body) {
        return Err(ServiceError::unknown_decision(id));
    }
    let mut detail = Map::new();
    detail.insert("decision_id".into(), json!(id));
    detail.insert("status".into(), json!(status.as_str()));
    via.note(&mut detail);
    let mut event = state.event(EventType::Outcome, &format!("agent:{}", head.id));
    event.agent = Some(head.id.to_string());
    event.retrievals = Some(retrievals.into_iter().map(Resource::into_string).collect());
    event.detail = Some(Value::Object(detail));
    state.audit.append(event).await?;
    Ok(())
}

/// Whether the reporting agent took part in the decision: the decision was
/// asked for it, or it is one of the decision's chain (a delegator
/// reporting for its delegate's call), or the decision's agent is one of
/// the reporter's own chain.
fn took_part(agent: &AgentCaller, decided: &bridle_core::audit::EventBody) -> bool {
    let chain: Vec<&str> = decided
        .detail
        .as_ref()
        .and_then(|d| d.get("chain"))
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let decided_for = decided.agent.as_deref();
    let reporter = agent.row().id.as_str();
    decided_for == Some(reporter)
        || chain.contains(&reporter)
        || agent
            .chain
            .iter()
            .any(|row| decided_for == Some(row.id.as_str()))
}
