//! Votes on approvals. Who may vote is proved before
//! ([`crate::capability::Voter`]); here the vote is recorded, and what it
//! brings into force follows in order: an elevation is activated or denied,
//! the vote is audited, a change to the record is activated or rejected
//! ([`super::manifest::decided`]), and a decided approval is sent to the
//! webhooks.

use bridle_core::audit::EventType;
use bridle_core::id::ApprovalId;
use bridle_store::{
    Approval, ApprovalKind, ApprovalState, ApprovalStore as _, ElevationStore as _,
};
use jiff::Timestamp;

use super::ServiceError;
use crate::capability::Voter;
use crate::state::AppState;
use crate::views::time::instant;

/// The approval `id`; [`ServiceError::NotFound`] when there is none.
pub async fn load(state: &AppState, id: &ApprovalId) -> Result<Approval, ServiceError> {
    state
        .store()
        .approval(id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("approval `{id}` not found")))
}

/// Record `voter`'s vote and bring into force what it decides.
pub async fn vote(
    state: &AppState,
    voter: &Voter,
    approve: bool,
    comment: Option<String>,
) -> Result<Approval, ServiceError> {
    let Voter {
        caller,
        principal: p,
        approval,
    } = voter;
    let id = &approval.id;
    let now = Timestamp::now();
    let updated = state
        .store()
        .vote(id, &p.id, approve, comment.as_deref(), now)
        .await?;
    if updated.kind == ApprovalKind::Elevation
        && let Some(eid) = &updated.elevation_id
    {
        match updated.state {
            ApprovalState::Approved => {
                if let Some(e) = state.store().elevation(eid).await? {
                    let expires = now + jiff::SignedDuration::from_secs(e.duration_secs);
                    // Not when it was ended meanwhile: nothing started.
                    if state
                        .store()
                        .activate_elevation(eid, expires)
                        .await?
                        .is_some()
                    {
                        let mut event = state.event(EventType::Elevation, &caller.actor());
                        event.agent = Some(updated.agent.to_string());
                        event.detail = Some(
                            serde_json::json!({"op": "activate", "elevation_id": eid, "name": e.name, "expires_at": instant(expires), "approval_id": id}),
                        );
                        state.audit.append(event).await?;
                    }
                }
            }
            ApprovalState::Denied => state.store().deny_elevation(eid).await?,
            _ => {}
        }
    }
    let mut event = state.event(EventType::Approval, &caller.actor());
    event.agent = Some(updated.agent.to_string());
    event.action = Some(updated.action.clone());
    // The vote is recorded before what it brings into force, so the log
    // reads approve → activate.
    let change_decided =
        updated.kind == ApprovalKind::Change && updated.state != ApprovalState::Pending;
    event.detail = Some(serde_json::json!({
        "op": if approve { "approve" } else { "deny" }, "approval_id": id, "state": updated.state.as_str(), "comment": comment,
    }));
    state.audit.append(event).await?;
    if change_decided {
        super::manifest::decided(state, caller, &updated).await?;
    }
    if updated.state != ApprovalState::Pending {
        state.changed(bridle_store::Change::Approval).await;
        let view = crate::views::approval::Approval::from(updated.clone());
        state.http.notify(
            "dev.bridle.approval.decided",
            id.as_str(),
            serde_json::to_value(&view).unwrap_or_default(),
        );
    }
    Ok(updated)
}
