//! The one authorization checkpoint: who is calling. Every handler takes a
//! [`Caller`] (or an [`Admin`]) and never looks at headers itself.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use bridle_core::engine::AgentState;
use bridle_store::{AgentRow, CredentialStore, Principal, PrincipalStore, RegistryRead, Role};

use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::{Claims, hash_secret};

/// An agent authenticated by one of its access tokens.
#[derive(Debug, Clone)]
pub struct AgentCaller {
    pub claims: Claims,
    pub row: AgentRow,
}

#[derive(Debug, Clone)]
pub enum Caller {
    Principal(Principal),
    Agent(Box<AgentCaller>),
}

impl Caller {
    pub fn actor(&self) -> String {
        match self {
            Self::Principal(p) => format!("principal:{}", p.id),
            Self::Agent(a) => format!("agent:{}", a.claims.sub),
        }
    }

    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Self::Principal(p) => Some(p),
            Self::Agent(_) => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.principal().is_some_and(|p| p.has_role(Role::Admin))
    }

    /// Admin, or the current owner of `row`.
    pub fn manages(&self, row: &AgentRow) -> bool {
        self.principal()
            .is_some_and(|p| p.has_role(Role::Admin) || p.id == row.owner)
    }

    pub fn require_principal(&self) -> Result<&Principal, ApiError> {
        self.principal().ok_or_else(|| {
            ApiError::Forbidden("this endpoint is for principals, not agents".into())
        })
    }

    pub fn require_admin(&self) -> Result<&Principal, ApiError> {
        let p = self.require_principal()?;
        if p.has_role(Role::Admin) {
            Ok(p)
        } else {
            Err(ApiError::Forbidden("requires the `admin` role".into()))
        }
    }
}

pub(crate) fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthenticated("missing `Authorization: Bearer …` header".into())
    })?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("malformed Authorization header".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::Unauthenticated("expected `Authorization: Bearer …`".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthenticated(
            "expected `Authorization: Bearer …`".into(),
        ));
    }
    Ok(token.trim())
}

/// Verify an agent access token fully: signature, claims, revocation, and
/// that every agent it names still exists and is not retired.
pub async fn verify_agent_token(state: &AppState, token: &str) -> Result<AgentCaller, ApiError> {
    let unauth = |why: &str| ApiError::Unauthenticated(format!("invalid access token: {why}"));
    let audiences = vec![state.config.audience(), state.config.issuer()];
    let claims = state
        .keys
        .verify(token, &state.config.issuer(), &audiences)
        .map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
    match state.store.token(&claims.jti).await? {
        Some(t) if !t.revoked => {}
        Some(_) => return Err(unauth("revoked")),
        None => return Err(unauth("unknown token id")),
    }
    let id = claims.sub.parse().map_err(|_| unauth("bad subject"))?;
    let row = state
        .store
        .agent(&id)
        .await?
        .ok_or_else(|| unauth("unknown agent"))?;
    if row.state == AgentState::Retired {
        return Err(unauth("the agent is retired"));
    }
    Ok(AgentCaller { claims, row })
}

/// A principal's API key (stored hashed).
pub async fn verify_api_key(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    state
        .store
        .principal_by_key(&hash_secret(key))
        .await?
        .ok_or_else(|| ApiError::Unauthenticated("unknown or deactivated API key".into()))
}

fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if looks_like_jwt(token) {
            Ok(Self::Agent(Box::new(
                verify_agent_token(state, token).await?,
            )))
        } else {
            Ok(Self::Principal(verify_api_key(state, token).await?))
        }
    }
}
