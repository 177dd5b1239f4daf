//! What an agent actually did over a window, attributed to the grants of
//! the version in force ([`bridle_core::activity::report`]), from the
//! hourly aggregates the audit writer keeps.

use bridle_core::activity::{UsageReport, report};
use bridle_core::manifest::suggest::{Suggestion, suggest};
use bridle_store::AgentRow;
use jiff::{SignedDuration, Timestamp};

use super::ServiceError;
use crate::state::AppState;

/// The longest window a usage question may span.
pub const MAX_WINDOW: SignedDuration = SignedDuration::from_hours(24 * 400);

/// The agent's usage from `now - window` on.
pub async fn usage(
    state: &AppState,
    row: &AgentRow,
    window: SignedDuration,
    now: Timestamp,
) -> Result<(Timestamp, UsageReport), ServiceError> {
    // Counted by the hour: the window starts at the top of its first hour.
    let start = now
        .checked_sub(window)
        .unwrap_or(Timestamp::MIN)
        .as_second();
    let since = Timestamp::from_second(start - start.rem_euclid(3600)).unwrap_or(Timestamp::MIN);
    let compiled = state.compiled(row).await?;
    let activity = state.store().activity(&row.id, since).await?;
    Ok((since, report(compiled.manifest(), &activity)))
}

/// A narrowed manifest from the agent's usage over `window` (`text` names
/// it in the evidence): never wider than the version in force, and one
/// that compiles.
pub async fn suggestion(
    state: &AppState,
    row: &AgentRow,
    text: &str,
    window: SignedDuration,
    now: Timestamp,
) -> Result<(Timestamp, Suggestion, String), ServiceError> {
    let (since, report) = usage(state, row, window, now).await?;
    let source = row.source.clone();
    let text = text.to_owned();
    let guardrails = state.guardrails.clone();
    let id = row.id.clone();
    let version = row.version;
    let (suggestion, unified) = tokio::task::spawn_blocking(move || {
        let s = suggest(&source, &report, &text).map_err(|e| ServiceError::StoredManifest {
            agent: id.clone(),
            reason: e.to_string(),
        })?;
        let manifest = bridle_core::Manifest::from_source(&s.manifest)
            .map_err(|e| ServiceError::Internal(format!("a suggestion does not load: {e}")))?;
        bridle_core::CompiledAgent::compile(manifest, &guardrails)
            .map_err(|e| ServiceError::Internal(format!("a suggestion does not compile: {e}")))?;
        if bridle_core::change::is_widening(&s.changes) {
            return Err(ServiceError::Internal("a suggestion would widen".into()));
        }
        let unified = super::manifest::unified(
            &s.current,
            &s.manifest,
            &format!("version {version}"),
            "suggestion",
        );
        Ok::<_, ServiceError>((s, unified))
    })
    .await
    .map_err(|e| ServiceError::Task(format!("the suggestion failed: {e}")))??;
    Ok((since, suggestion, unified))
}
