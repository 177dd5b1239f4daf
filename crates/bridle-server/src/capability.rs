//! Capability-scoped callers. Each extractor authenticates through
//! [`Caller`] and then proves one capability before the handler runs (and
//! before its body is read), so a handler that takes an [`Admin`] cannot run
//! for anyone else, and what it may do is written in its signature.
//! [`OwnerOf`] loads the agent the route names and proves the caller
//! manages it (an admin, or its current owner); [`SelfOrOwner`] proves the
//! caller is the agent itself or its owner; [`Voter`] proves the caller may
//! vote on the approval the route names; [`MetricsReader`] admits `admin`,
//! `auditor` or the configured metrics token to `/metrics`. Visibility of
//! reads (`access.rs`) is checked where the record is read.
//!
//! Handlers reach the store only through these values: [`AppState::store`]
//! is refused by `clippy.toml` outside the layers below the transports, and
//! a capability can be built only here, after its proof. What a handler
//! does beyond one read or write of the record it proved goes through a
//! service (`crate::service`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use bridle_core::id::AgentId;
use bridle_core::id::ApprovalId;
use bridle_store::{AgentRow, Approval, ApprovalState, Principal, Role, Store};

use crate::auth::{Caller, Scheme};
use crate::error::ApiError;
use crate::path::IdPath;
use crate::state::AppState;
use crate::throttle::{self, Attempt, Kind, Origin};

/// A principal with role `admin`: the whole store.
#[derive(Debug, Clone)]
pub struct Admin {
    pub principal: Principal,
    store: Store,
}

/// A principal with role `pep` (an enforcement point).
#[derive(Debug, Clone)]
pub struct Pep(pub Principal);

/// A principal with `admin` or `auditor`: may read everything, the audit
/// log and its checkpoints included.
#[derive(Debug, Clone)]
pub struct AuditReader {
    pub principal: Principal,
    store: Store,
}

impl AuditReader {
    /// The store, to read (the audit log, checkpoints, the registry).
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// A caller who may read the metrics: a principal with `admin` or
/// `auditor`, or a scraper presenting the configured `metrics_token`
/// (compared in constant time; a wrong one is then tried as an API key,
/// so it fails, is throttled and audited like one). Never an agent.
#[derive(Debug, Clone)]
pub struct MetricsReader {
    /// `None` for the metrics token.
    pub principal: Option<Principal>,
    store: Store,
}

impl MetricsReader {
    /// The store, to read what the metrics count (pending approvals).
    pub fn store(&self) -> &Store {
        &self.store
    }
}

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
    store: Store,
}

impl OwnerOf {
    /// The store, for the agent this capability names (its credentials,
    /// its record).
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl FromRequestParts<AppState> for OwnerOf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let IdPath(id) = IdPath::<AgentId>::from_request_parts(parts, state).await?;
        Self::prove(state, caller, &id).await
    }
}

impl OwnerOf {
    /// The proof of the extractor for a caller already authenticated
    /// (the console's signed-in principal): `id` loaded, `caller` manages it.
    pub async fn prove(state: &AppState, caller: Caller, id: &AgentId) -> Result<Self, ApiError> {
        let agent = crate::service::agents::load(state, id).await?;
        if !caller.manages(&agent) {
            return Err(ApiError::Forbidden(format!(
                "only an admin or the owner of `{id}` may manage it"
            )));
        }
        Ok(Self {
            caller,
            agent,
            store: store(state),
        })
    }
}

/// The agent the route's `{id}` names, and a caller who speaks for it
/// outside decisions: the agent itself with its own (not a delegated)
/// token, or its owner. Unknown agent 404, anyone else 403.
#[derive(Debug, Clone)]
pub struct SelfOrOwner {
    pub caller: Caller,
    pub agent: AgentRow,
}

impl FromRequestParts<AppState> for SelfOrOwner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let IdPath(id) = IdPath::<AgentId>::from_request_parts(parts, state).await?;
        let agent = crate::service::agents::load(state, &id).await?;
        // A delegated token speaks for its delegator only in decisions.
        let own_token = matches!(&caller, Caller::Agent(a) if a.is_own(agent.id.as_str()));
        let owner = caller.principal().is_some_and(|p| p.id == agent.owner);
        if !own_token && !owner {
            return Err(ApiError::Forbidden(
                "an elevation is requested by the agent itself or its owner".into(),
            ));
        }
        Ok(Self { caller, agent })
    }
}

/// A principal who may vote now on the pending approval the route's `{id}`
/// names: it can see the approval, is a listed approver (directly or by a
/// group), is not the agent's owner (unless `allow_owner`), did not submit
/// it (a change), and has not voted. Who may not see the approval learns
/// neither its state nor its approvers from a refused vote.
#[derive(Debug, Clone)]
pub struct Voter {
    pub caller: Caller,
    pub principal: Principal,
    pub approval: Approval,
}

impl FromRequestParts<AppState> for Voter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require_principal()?;
        let IdPath(id) = IdPath::<ApprovalId>::from_request_parts(parts, state).await?;
        Self::prove(state, caller, &id).await
    }
}

impl Voter {
    /// The proof of the extractor for a caller already authenticated (the
    /// console's signed-in principal).
    pub async fn prove(
        state: &AppState,
        caller: Caller,
        id: &ApprovalId,
    ) -> Result<Self, ApiError> {
        let p = caller.require_principal()?.clone();
        let approval = crate::service::approvals::load(state, id).await?;
        let parties = crate::access::PartyCache::default()
            .parties(state, &approval)
            .await?;
        if !crate::access::can_see_approval(&caller, &approval, &parties) {
            return Err(ApiError::Forbidden(format!(
                "`{}` is not an eligible approver of `{id}`",
                p.id
            )));
        }
        if approval.state != ApprovalState::Pending {
            return Err(ApiError::Conflict(format!(
                "approval `{id}` is {}",
                approval.state.as_str()
            )));
        }
        if let Some(why) = ineligible(&approval, &p) {
            return Err(ApiError::Forbidden(why));
        }
        Ok(Self {
            caller,
            principal: p,
            approval,
        })
    }
}

/// Why `p` may not vote on `a`, if they may not.
fn ineligible(a: &Approval, p: &Principal) -> Option<String> {
    // Two people: whoever proposed a change to the record never approves it.
    if a.change_submitter() == Some(p.id.as_str()) {
        return Some("the submitter of a change may not approve it".into());
    }
    if a.owner == p.id && !a.allow_owner {
        return Some("the agent's owner may not approve its own agent's request".into());
    }
    if !crate::access::is_listed_approver(a, p) {
        return Some(format!(
            "`{}` is not an eligible approver ({})",
            p.id,
            a.approvers.join(", ")
        ));
    }
    if a.votes.iter().any(|v| v.principal == p.id) {
        return Some(format!("`{}` has already voted", p.id));
    }
    None
}

impl Admin {
    pub fn actor(&self) -> String {
        format!("principal:{}", self.principal.id)
    }

    /// The whole store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// The store, for a capability just proved.
#[expect(
    clippy::disallowed_methods,
    reason = "the checkpoint: a capability is built here after its proof"
)]
fn store(state: &AppState) -> Store {
    state.store().clone()
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
            Ok(Self {
                principal: p,
                store: store(state),
            })
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
        Self::prove(state, p)
    }
}

impl AuditReader {
    /// The proof of the extractor for a principal already authenticated.
    pub fn prove(state: &AppState, p: Principal) -> Result<Self, ApiError> {
        if crate::access::sees_everything(&p) {
            Ok(Self {
                principal: p,
                store: store(state),
            })
        } else {
            Err(ApiError::Forbidden("requires `admin` or `auditor`".into()))
        }
    }
}

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(expected) = &state.config.metrics_token
            && let Ok((Scheme::Bearer, given)) = crate::auth::authorization(&parts.headers)
        {
            let origin = Origin::of(parts, &state.config.auth_throttle);
            let prefix = throttle::key_prefix(given);
            let attempt = Attempt {
                kind: Kind::ApiKey,
                identifier: &prefix,
                origin: &origin,
            };
            // A locked credential or source tries nothing, this token included.
            throttle::check(state, &attempt)?;
            if secret_eq(given, expected.expose()) {
                return Ok(Self {
                    principal: None,
                    store: store(state),
                });
            }
        }
        let p = principal(parts, state).await?;
        if crate::access::sees_everything(&p) {
            Ok(Self {
                principal: Some(p),
                store: store(state),
            })
        } else {
            Err(ApiError::Forbidden(
                "requires `admin`, `auditor` or the metrics token".into(),
            ))
        }
    }
}

/// Whether `given` is `expected`, in a time that tells nothing about either:
/// both are hashed first, so not even their lengths are compared.
fn secret_eq(given: &str, expected: &str) -> bool {
    use sha2::{Digest as _, Sha256};
    use subtle::ConstantTimeEq as _;
    let given: &[u8] = &Sha256::digest(given.as_bytes());
    let expected: &[u8] = &Sha256::digest(expected.as_bytes());
    given.ct_eq(expected).into()
}

impl FromRequestParts<AppState> for Person {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        principal(parts, state).await.map(Self)
    }
}
