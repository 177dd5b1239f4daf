//! Access tokens, once the OAuth endpoint has authenticated the client and
//! checked the grant: sign, record (so it can be revoked), audit; and
//! revoke. The token endpoint shapes the request and the answer
//! (`routes/oauth`).

use bridle_core::audit::EventType;
use bridle_core::id::{AgentId, ClientId, Jti, PrincipalId};
use bridle_store::{CredentialStore as _, NewToken};
use jiff::Timestamp;

use super::ServiceError;
use crate::state::AppState;
use crate::tokens::{Claims, Confirmation, new_id};

/// What a token is issued for.
#[derive(Debug)]
pub struct Issue<'a> {
    /// The authenticated client, the agent it belongs to, and how it
    /// authenticated (`client_secret_basic`, `private_key_jwt`, …).
    pub client_id: &'a ClientId,
    pub client_agent: &'a AgentId,
    pub client_auth: &'static str,
    /// `client_credentials` or the token-exchange grant type.
    pub grant: &'static str,
    pub sub: &'a AgentId,
    pub aud: String,
    pub exp: Timestamp,
    pub scope: Option<String>,
    pub act: Option<serde_json::Value>,
    pub cnf: Option<Confirmation>,
    pub parent_jti: Option<&'a Jti>,
    /// The authorization code grant: the owner who consented.
    pub consented_by: Option<&'a PrincipalId>,
}

/// Sign, record and audit a token; answers the JWT and its claims.
pub async fn issue(state: &AppState, i: Issue<'_>) -> Result<(String, Claims), ServiceError> {
    let now = Timestamp::now();
    let claims = Claims {
        iss: state.config.issuer(),
        sub: i.sub.to_string(),
        aud: i.aud,
        client_id: i.client_id.to_string(),
        iat: now.as_second(),
        exp: i.exp.as_second(),
        jti: new_id("", 16)?,
        scope: i.scope,
        act: i.act,
        cnf: i.cnf,
    };
    let jwt = state
        .keys()
        .mint(&claims)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    state
        .store()
        .record_token(&NewToken {
            jti: &claims.jti,
            agent: i.sub,
            client_id: i.client_id,
            expires_at: i.exp,
            parent_jti: i.parent_jti,
        })
        .await?;
    let mut event = state.event(EventType::Token, &format!("agent:{}", i.client_agent));
    event.agent = Some(i.sub.to_string());
    event.detail = Some(serde_json::json!({
        "op": "issue", "grant_type": i.grant, "client_id": i.client_id,
        "client_auth": i.client_auth, "jti": claims.jti, "aud": claims.aud,
        "exp": claims.exp, "scope": claims.scope, "act": claims.act,
        "parent_jti": i.parent_jti, "dpop_jkt": claims.cnf.as_ref().map(|c| &c.jkt),
    }));
    if let (Some(p), Some(detail)) = (i.consented_by, event.detail.as_mut()) {
        detail["consented_by"] = serde_json::json!(p);
    }
    state.audit.append(event).await?;
    Ok((jwt, claims))
}

/// Revoke the token `claims` describe and those exchanged from it, for
/// `actor`; audited when anything was revoked. Answers how many were.
pub async fn revoke(state: &AppState, actor: &str, claims: &Claims) -> Result<u64, ServiceError> {
    let revoked = state.store().revoke_token(&claims.jti).await?;
    state.changed(bridle_store::Change::Tokens).await;
    if revoked > 0 {
        let mut event = state.event(EventType::Token, actor);
        event.agent = Some(claims.sub.clone());
        event.detail = Some(serde_json::json!({
            "op": "revoke", "jti": claims.jti, "client_id": claims.client_id,
            "revoked": revoked,
        }));
        state.audit.append(event).await?;
    }
    Ok(revoked)
}
