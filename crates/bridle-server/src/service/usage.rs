//! What an agent actually did over a window, attributed to the grants of
//! the version in force ([`bridle_core::activity::report`]), from the
//! hourly aggregates the audit writer keeps.

use bridle_core::activity::{UsageReport, report};
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
    let since = now.checked_sub(window).unwrap_or(Timestamp::MIN);
    let compiled = state.compiled(row).await?;
    let activity = state.store().activity(&row.id, since).await?;
    Ok((since, report(compiled.manifest(), &activity)))
}
