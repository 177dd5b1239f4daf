//! The web console's sessions and the few reads only its pages need. A
//! session is a random id (128 bits from the OS) in a cookie; the store
//! keeps only its SHA-256, the principal, the CSRF token of its forms and
//! its times. Who signs in is proved by the API-key checkpoint
//! ([`crate::auth::authenticate_api_key`]) before a session is created;
//! every request then reads the session and the principal again, so a
//! sign-out or a deactivation ends it at once on every replica.

use bridle_core::audit::EventType;
use bridle_store::{AgentRow, Principal, PrincipalStore as _, SessionRow, SessionStore as _};
use jiff::{SignedDuration, Timestamp};
use rand::TryRngCore as _;

use super::ServiceError;
use crate::state::AppState;
use crate::tokens::hash_secret;

/// A fresh random value from the operating system, as 32 hex digits
/// (128 bits).
fn random_hex() -> Result<String, ServiceError> {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| ServiceError::Internal(format!("the OS random source failed: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A new session for `p` (already authenticated): its cookie value and row.
pub async fn create(state: &AppState, p: &Principal) -> Result<(String, SessionRow), ServiceError> {
    let id = random_hex()?;
    let now = Timestamp::now();
    let max = SignedDuration::from_secs(state.config.console.session_max_secs);
    let row = SessionRow {
        id_hash: hash_secret(&id),
        principal: p.id.clone(),
        csrf_token: random_hex()?,
        created_at: now,
        last_seen_at: now,
        expires_at: now.checked_add(max).unwrap_or(Timestamp::MAX),
    };
    state.store().create_session(&row).await?;
    let mut event = state.event(EventType::Authentication, &format!("principal:{}", p.id));
    event.detail = Some(serde_json::json!({"op": "console_sign_in"}));
    state.audit.append(event).await?;
    Ok((id, row))
}

/// Why a session cookie does not sign anyone in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Unknown,
    Expired,
    Idle,
    Deactivated,
}

/// The session the cookie value `id` names and its principal, if it is
/// stored, not past either expiry, and its principal is active. A session
/// that ended is deleted. A use is noted at most once a minute.
pub async fn resume(
    state: &AppState,
    id: &str,
) -> Result<Result<(SessionRow, Principal), Ended>, ServiceError> {
    let hash = hash_secret(id);
    let Some(row) = state.store().session(&hash).await? else {
        return Ok(Err(Ended::Unknown));
    };
    let now = Timestamp::now();
    let idle = SignedDuration::from_secs(state.config.console.session_idle_secs);
    let ended = if now >= row.expires_at {
        Some(Ended::Expired)
    } else if row.last_seen_at.checked_add(idle).is_ok_and(|t| now >= t) {
        Some(Ended::Idle)
    } else {
        None
    };
    let principal = match ended {
        Some(_) => None,
        None => state
            .store()
            .principal(&row.principal)
            .await?
            .filter(|p| p.active),
    };
    let Some(principal) = principal else {
        state.store().delete_session(&hash).await?;
        return Ok(Err(ended.unwrap_or(Ended::Deactivated)));
    };
    if now.duration_since(row.last_seen_at) > SignedDuration::from_secs(60) {
        state.store().touch_session(&hash, now).await?;
    }
    Ok(Ok((row, principal)))
}

/// End the session the cookie value `id` names (sign out), audited.
pub async fn end(state: &AppState, id: &str, p: &Principal) -> Result<(), ServiceError> {
    if state.store().delete_session(&hash_secret(id)).await? {
        let mut event = state.event(EventType::Authentication, &format!("principal:{}", p.id));
        event.detail = Some(serde_json::json!({"op": "console_sign_out"}));
        state.audit.append(event).await?;
    }
    Ok(())
}

/// Drop the sessions past either expiry (the maintenance loop).
pub async fn purge(state: &AppState) -> Result<u64, ServiceError> {
    let now = Timestamp::now();
    let idle = SignedDuration::from_secs(state.config.console.session_idle_secs);
    let idle_before = now.checked_sub(idle).unwrap_or(Timestamp::MIN);
    Ok(state.store().purge_sessions(now, idle_before).await?)
}

/// When `row` last had a decision recorded within `window`, to the hour's
/// record (the usage aggregates).
pub async fn last_activity(
    state: &AppState,
    row: &AgentRow,
    window: SignedDuration,
) -> Result<Option<Timestamp>, ServiceError> {
    let since = Timestamp::now()
        .checked_sub(window)
        .unwrap_or(Timestamp::MIN);
    let activity = state.store().activity(&row.id, since).await?;
    Ok(activity.iter().map(|a| a.last_at).max())
}

/// For an action approval, the grant of the agent's record that asked for
/// it: its path (`tools[1]`), its approval rule as written, and the rule's
/// line in the manifest in force. `None` for other kinds, or when the
/// record no longer has such a rule.
pub async fn asking_rule(
    state: &AppState,
    a: &bridle_store::Approval,
) -> Result<Option<(String, String, usize)>, ServiceError> {
    if a.kind != bridle_store::ApprovalKind::Action {
        return Ok(None);
    }
    let row = super::agents::load(state, &a.agent).await?;
    let compiled = state.compiled(&row).await?;
    let manifest = compiled.manifest();
    let Some(i) = bridle_core::activity::grant_of(manifest, &a.action) else {
        return Ok(None);
    };
    let Some(rule) = manifest.tools.get(i).and_then(|t| t.approval.as_ref()) else {
        return Ok(None);
    };
    let written = row
        .manifest
        .get("tools")
        .and_then(|t| t.get(i))
        .and_then(|t| t.get("approval"))
        .map(ToString::to_string)
        .unwrap_or_default();
    Ok(Some((
        format!("tools[{i}].approval"),
        written,
        rule.pos.line,
    )))
}
