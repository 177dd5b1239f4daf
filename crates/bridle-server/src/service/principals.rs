//! Principals and signing keys, the admin's record: create a principal
//! (its API key shown once, only its hash kept), deactivate one (its keys
//! stop working; the agents it owns become orphaned), rotate the token
//! signing key. Each change is audited before it is answered.

use bridle_core::audit::EventType;
use bridle_core::id::{AgentId, PrincipalId};
use bridle_store::{NewPrincipal, Principal, PrincipalStore as _, RegistryRead as _};

use super::ServiceError;
use crate::capability::Admin;
use crate::state::AppState;
use crate::tokens::{hash_secret, random_token};

/// Create `p`; answers the principal and its API key (shown once).
pub async fn create(
    state: &AppState,
    admin: &Admin,
    p: &NewPrincipal,
) -> Result<(Principal, String), ServiceError> {
    let api_key = format!("bk_{}", random_token(32));
    let created = admin
        .store()
        .create_principal(p, &hash_secret(&api_key))
        .await?;
    let mut event = state.event(EventType::Principal, &admin.actor());
    event.detail = Some(serde_json::json!({
        "op": "create", "principal": created.id,
        "roles": created.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "groups": created.groups,
    }));
    state.audit.append(event).await?;
    Ok((created, api_key))
}

/// Deactivate `id`; answers it and the agents it owned, now orphaned.
pub async fn deactivate(
    state: &AppState,
    admin: &Admin,
    id: &PrincipalId,
) -> Result<(Principal, Vec<AgentId>), ServiceError> {
    let p = admin.store().deactivate_principal(id).await?;
    let orphaned: Vec<AgentId> = admin
        .store()
        .agents()
        .await?
        .into_iter()
        .filter(|a| a.owner == *id)
        .map(|a| a.id)
        .collect();
    let mut event = state.event(EventType::Principal, &admin.actor());
    event.detail = Some(
        serde_json::json!({"op": "deactivate", "principal": p.id, "orphaned_agents": orphaned}),
    );
    state.audit.append(event).await?;
    for agent in &orphaned {
        state.posture.agent(agent);
    }
    Ok((p, orphaned))
}

/// Rotate the token signing key: the new key signs from now on, the old
/// one verifies until it ages out.
pub async fn rotate_keys(state: &AppState, admin: &Admin) -> Result<(), ServiceError> {
    let old = state.keys().current_kid().to_owned();
    let keys = state.rotate_keys().await?;
    state.changed(bridle_store::Change::Keys).await;
    let mut event = state.event(EventType::Credential, &admin.actor());
    event.detail = Some(serde_json::json!({
        "op": "rotate_signing_key", "retired_kid": old, "kid": keys.current_kid(),
    }));
    state.audit.append(event).await?;
    Ok(())
}
