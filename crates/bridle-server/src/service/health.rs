//! What `/healthz` and `/readyz` test. Neither answer carries the cause:
//! it is logged, the body says only that the server is not fit.

use bridle_store::AuditRead as _;

use crate::state::AppState;

/// Why a check failed (for the log only).
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("an audit append does not reach the disk: {0}")]
    NotWritable(bridle_store::StoreError),
    #[error("the audit log is unreadable: {0}")]
    Unreadable(bridle_store::StoreError),
    #[error("the store is not ready: {0}")]
    NotReady(bridle_store::StoreError),
    #[error("no signing key is loaded")]
    NoKeys,
}

/// Healthy: decisions can be answered, because what each of them needs
/// works now — an audit record is appended and made durable (the probe
/// takes the append path to the disk and leaves the chain unchanged), and
/// the log reads back.
pub async fn healthy(state: &AppState) -> Result<(), HealthError> {
    state
        .store()
        .check_writable()
        .await
        .map_err(HealthError::NotWritable)?;
    state
        .store()
        .audit_head()
        .await
        .map_err(HealthError::Unreadable)?;
    Ok(())
}

/// Ready to take traffic: the store answers and carries every migration
/// this build needs, and the signing keys are loaded. Writes are not
/// tried (that is [`healthy`]).
pub async fn ready(state: &AppState) -> Result<(), HealthError> {
    state
        .store()
        .check_ready()
        .await
        .map_err(HealthError::NotReady)?;
    if state.keys().jwks().keys.is_empty() {
        return Err(HealthError::NoKeys);
    }
    Ok(())
}
