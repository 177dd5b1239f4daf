//! Capability-scoped callers. Each extractor authenticates through
//! [`Caller`] and then proves one capability before the handler runs (and
//! before its body is read), so a handler that takes an [`Admin`] cannot run
//! for anyone else, and what it may do is written in its signature.
//! [`OwnerOf`] loads the agent the route names and proves the caller
//! manages it (an admin, or its current owner); visibility of reads
//! (`access.rs`) is checked where the record is read.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use bridle_core::id::AgentId;
use bridle_store::{AgentRow, Principal, Role};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::path::IdPath;
use crate::state::AppState;

/// A principal with role `admin`.
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

/// A principal with role `pep` (an enforcement point).
#[derive(Debug, Clone)]
pub struct Pep(pub Principal);

/// A principal with `admin` or `auditor`: may read everything.
#[derive(Debug, Clone)]
pub struct AuditReader(pub Principal);

/// Any principal (a person or service with an API key), not an agent.
#[derive(Debug, Clone)]
pub struct Person(pub Principal);

/// The agent the route's `{id}` names, and a caller who manages it: an
/// admin, or the agent's current owner. An unknown (or unparsable) id is
/// 404; an agent the caller does not manage is 403 (a write the caller may
/// not make). Handlers that check their body first take
/// `Result<OwnerOf, ApiError>` and answer it after the body.
#[derive(Debug, Clone)]
pub struct OwnerOf {
    pub caller: Caller,
    pub agent: AgentRow,
}

impl FromRequestParts<AppState> for OwnerOf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let IdPath(id) = IdPath::<AgentId>::from_request_parts(parts, state).await?;
        let agent = crate::routes::agents::load(state, &id).await?;
        if !caller.manages(&agent) {
            return Err(ApiError::Forbidden(format!(
                "only an admin or the owner of `{id}` may manage it"
            )));
        }
        Ok(Self { caller, agent })
    }
}

impl Admin {
    pub fn actor(&self) -> String {
        format!("principal:{}", self.0.id)
    }
}

async fn principal(parts: &mut Parts, state: &AppState) -> Result<Principal, ApiError> {
    let caller = Caller::from_request_parts(parts, state).await?;
    caller.require_principal().cloned()
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let p = principal(parts, state).await?;
        if p.has_role(Role::Admin) {
            Ok(Self(p))
        } else {
            Err(ApiError::Forbidden("requires the `admin` role".into()))
        }
    }
}

impl FromRequestParts<AppState> for Pep {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let p = principal(parts, state).await?;
        if p.has_role(Role::Pep) {
            Ok(Self(p))
        } else {
            Err(ApiError::Forbidden("requires the `pep` role".into()))
        }
    }
}

impl FromRequestParts<AppState> for AuditReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let p = principal(parts, state).await?;
        if crate::access::sees_everything(&p) {
            Ok(Self(p))
        } else {
            Err(ApiError::Forbidden("requires `admin` or `auditor`".into()))
        }
    }
}

impl FromRequestParts<AppState> for Person {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        principal(parts, state).await.map(Self)
    }
}
