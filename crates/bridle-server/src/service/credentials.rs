//! An agent's OAuth client credentials: issue (a secret, or a registered
//! public JWK for `private_key_jwt`), rotate a secret with an overlap, and
//! revoke (with every token issued to the credential and those exchanged
//! from them). Who may is proved before ([`OwnerOf`]); each change is
//! audited before it is answered.

use bridle_core::audit::EventType;
use bridle_core::engine::AgentState;
use bridle_core::id::ClientId;
use bridle_store::{AgentRow, ClientAuth, CredentialRow, CredentialStore as _, Store};
use jiff::{SignedDuration, Timestamp};

use super::ServiceError;
use crate::capability::OwnerOf;
use crate::jose::PublicKey;
use crate::state::AppState;
use crate::tokens::{hash_secret, new_id, random_token};
use crate::views::time::instant;

/// A credential just issued: the secret is shown once, only its hash kept.
#[derive(Debug)]
pub struct Issued {
    pub client_id: ClientId,
    /// Absent for `private_key_jwt`.
    pub secret: Option<String>,
    /// RFC 7638 thumbprint of the registered key (`private_key_jwt`).
    pub thumbprint: Option<String>,
}

impl Issued {
    pub fn method(&self) -> &'static str {
        if self.secret.is_some() {
            "client_secret_basic"
        } else {
            "private_key_jwt"
        }
    }
}

/// A secret just rotated: the new secret (shown once) and when the previous
/// one stops working (absent: at once).
#[derive(Debug)]
pub struct Rotated {
    pub secret: String,
    pub previous_until: Option<Timestamp>,
}

/// One of the agent's credentials; 404 for another agent's or none.
pub async fn credential_of(
    store: &Store,
    row: &AgentRow,
    client_id: &str,
) -> Result<CredentialRow, ServiceError> {
    let not_found =
        || ServiceError::NotFound(format!("`{}` has no credential `{client_id}`", row.id));
    // A client id that cannot be one names no credential.
    let client_id: ClientId = client_id.parse().map_err(|_| not_found())?;
    store
        .credential(&client_id)
        .await?
        .filter(|c| c.agent_id == row.id)
        .ok_or_else(not_found)
}

async fn audit(
    state: &AppState,
    owner: &OwnerOf,
    detail: serde_json::Value,
) -> Result<(), ServiceError> {
    let mut event = state.event(EventType::Credential, &owner.caller.actor());
    event.agent = Some(owner.agent.id.to_string());
    event.detail = Some(detail);
    state.posture.about(&event);
    state.audit.append(event).await?;
    Ok(())
}

/// Issue a credential: with `jwk`, register that public key; otherwise a
/// fresh secret.
pub async fn issue(
    state: &AppState,
    owner: &OwnerOf,
    jwk: Option<&serde_json::Value>,
) -> Result<Issued, ServiceError> {
    let row = &owner.agent;
    let id = &row.id;
    match row.state {
        AgentState::Retired => {
            return Err(ServiceError::Conflict(format!("agent `{id}` is retired")));
        }
        // Nothing is issued for an agent that does not exist yet.
        AgentState::Proposed => {
            return Err(ServiceError::Conflict(format!(
                "agent `{id}` is proposed: credentials are issued once its first version is approved"
            )));
        }
        AgentState::Active | AgentState::Suspended => {}
    }
    let client_id: ClientId = new_id(&format!("{id}."), 9)?;
    let issued = match jwk {
        Some(jwk) => {
            let key = PublicKey::from_json(jwk)
                .map_err(|e| ServiceError::invalid("unusable key", "jwk", e.to_string()))?;
            let json = serde_json::to_string(&key.jwk)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            owner
                .store()
                .add_credential(id, &client_id, &ClientAuth::PublicJwk(json))
                .await?;
            Issued {
                client_id,
                secret: None,
                thumbprint: Some(key.thumbprint),
            }
        }
        None => {
            let secret = format!("bcs_{}", random_token(32));
            let auth = ClientAuth::Secret {
                hash: hash_secret(&secret),
                previous: None,
            };
            owner.store().add_credential(id, &client_id, &auth).await?;
            Issued {
                client_id,
                secret: Some(secret),
                thumbprint: None,
            }
        }
    };
    audit(
        state,
        owner,
        serde_json::json!({
            "op": "create", "client_id": issued.client_id,
            "method": issued.method(), "jwk_thumbprint": issued.thumbprint,
        }),
    )
    .await?;
    Ok(issued)
}

/// Rotate a credential's secret; the previous one keeps working for
/// `overlap` (zero: stops at once).
pub async fn rotate(
    state: &AppState,
    owner: &OwnerOf,
    client_id: &str,
    overlap: SignedDuration,
) -> Result<Rotated, ServiceError> {
    let cred = credential_of(owner.store(), &owner.agent, client_id).await?;
    if cred.revoked_at.is_some() {
        return Err(ServiceError::Conflict(format!("`{client_id}` is revoked")));
    }
    if matches!(cred.auth, ClientAuth::PublicJwk(_)) {
        return Err(ServiceError::Conflict(format!(
            "`{client_id}` uses `private_key_jwt`: register a new key as a new credential instead"
        )));
    }
    let secret = format!("bcs_{}", random_token(32));
    let previous_until = (!overlap.is_zero()).then(|| Timestamp::now() + overlap);
    if !owner
        .store()
        .rotate_secret(&cred.client_id, &hash_secret(&secret), previous_until)
        .await?
    {
        return Err(ServiceError::Conflict(format!(
            "`{client_id}` cannot be rotated"
        )));
    }
    audit(
        state,
        owner,
        serde_json::json!({"op": "rotate", "client_id": client_id, "previous_expires_at": previous_until.map(instant)}),
    )
    .await?;
    Ok(Rotated {
        secret,
        previous_until,
    })
}

/// Revoke a credential and every token issued to it (and exchanged from
/// those); answers the credential as it is now.
pub async fn revoke(
    state: &AppState,
    owner: &OwnerOf,
    client_id: &str,
) -> Result<CredentialRow, ServiceError> {
    let cred = credential_of(owner.store(), &owner.agent, client_id).await?;
    let Some(tokens) = owner.store().revoke_credential(&cred.client_id).await? else {
        return Err(ServiceError::Conflict(format!(
            "`{client_id}` is already revoked"
        )));
    };
    state.changed(bridle_store::Change::Tokens).await;
    audit(
        state,
        owner,
        serde_json::json!({"op": "revoke", "client_id": client_id, "tokens_revoked": tokens}),
    )
    .await?;
    credential_of(owner.store(), &owner.agent, client_id).await
}
