//! Containment. Denial spikes: `monitoring.suspend_after_denials:
//! N/WINDOW` suspends an agent automatically when it is denied N times
//! within WINDOW (its tokens stop working at once).

use bridle_core::CompiledAgent;
use bridle_core::audit::EventType;
use bridle_core::engine::AgentState;
use bridle_store::{AgentRow, RegistryWrite};
use jiff::Timestamp;

use super::ServiceError;
use crate::state::AppState;

pub async fn note_denial(
    state: &AppState,
    row: &AgentRow,
    agent: &CompiledAgent,
    now: Timestamp,
) -> Result<(), ServiceError> {
    let Some(limit) = agent.manifest().monitoring.suspend_after_denials else {
        return Ok(());
    };
    let spike = {
        let mut all = state.denials.lock().unwrap_or_else(|p| p.into_inner());
        let q = all.entry(row.id.to_string()).or_default();
        let from = now - limit.per;
        while q.front().is_some_and(|t| *t <= from) {
            q.pop_front();
        }
        q.push_back(now);
        let spike = q.len() >= usize::try_from(limit.count).unwrap_or(usize::MAX);
        if spike {
            q.clear();
        }
        spike
    };
    if !spike || row.state != AgentState::Active {
        return Ok(());
    }
    let reason = format!(
        "automatic: {} denials within {}",
        limit.count,
        bridle_core::manifest::units::format_duration(limit.per)
    );
    state
        .store()
        .set_state(
            &row.id,
            AgentState::Suspended,
            &reason,
            &bridle_store::StateBy {
                actor: "system".into(),
                admin: false,
            },
        )
        .await?;
    state.changed(bridle_store::Change::Tokens).await;
    let mut event = state.event(EventType::Lifecycle, "system");
    event.agent = Some(row.id.to_string());
    event.detail = Some(serde_json::json!({"state": "suspended", "reason": reason}));
    state.audit.append(event).await?;
    tracing::warn!(agent = %row.id, "{reason}");
    Ok(())
}
