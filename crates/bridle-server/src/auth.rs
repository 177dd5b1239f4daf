//! The one authorization checkpoint: who is calling. Every handler takes a
//! [`Caller`] (or an [`Admin`]) and never looks at headers itself. Failed
//! API keys and access tokens are throttled and audited here
//! ([`crate::throttle`]).

#![expect(
    clippy::disallowed_methods,
    reason = "the authentication checkpoint: it reads tokens, keys and agents to prove who calls"
)]

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use bridle_core::engine::AgentState;
use bridle_core::id::AgentId;
use bridle_store::{AgentRow, CredentialStore, Principal, PrincipalStore, RegistryRead, Role};

use crate::error::ApiError;
use crate::jose::{self, DPOP_IAT_WINDOW};
use crate::state::AppState;
use crate::throttle::{self, Attempt, Kind, Origin};
use crate::token_cache::Verified;
use crate::tokens::{Claims, hash_secret};

/// An agent authenticated by one of its access tokens.
#[derive(Debug, Clone)]
pub struct AgentCaller {
    pub claims: Claims,
    /// The token's subject first, then each actor of its `act` chain,
    /// outermost (the current actor) first. Shared with the verified-token
    /// cache: a decision does not copy the agents' records.
    pub chain: std::sync::Arc<[AgentRow]>,
}

impl AgentCaller {
    /// The token's subject.
    #[expect(
        clippy::indexing_slicing,
        reason = "never empty: `chain_rows` starts every chain with the token's subject"
    )]
    pub fn row(&self) -> &AgentRow {
        &self.chain[0]
    }

    /// The subject acting for itself: not a delegated token. Only such a
    /// token speaks for its agent in requests about the agent (elevations).
    pub fn is_own(&self, agent: &str) -> bool {
        self.claims.act.is_none() && self.claims.sub == agent
    }
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

/// The credential in an `Authorization` header and its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Dpop,
}

pub(crate) fn authorization(headers: &HeaderMap) -> Result<(Scheme, &str), ApiError> {
    let expected = || ApiError::Unauthenticated("expected `Authorization: Bearer …`".into());
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthenticated("missing `Authorization: Bearer …` header".into())
    })?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("malformed Authorization header".into()))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(expected)?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(expected());
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(expected());
    }
    Ok((scheme, token))
}

/// A DPoP proof and the request it must be for.
#[derive(Debug, Clone, Copy)]
pub struct DpopEvidence<'a> {
    pub proof: &'a str,
    pub method: &'a str,
    pub url: &'a str,
}

/// How an access token was presented.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presentation<'a> {
    /// The audience of the resource server it was presented to, when a
    /// `pep` says so; the server's own audiences are always accepted.
    pub audience: Option<&'a str>,
    /// The `Authorization` scheme it came with; `None` when a `pep`
    /// forwards it.
    pub scheme: Option<Scheme>,
    pub dpop: Option<DpopEvidence<'a>>,
    /// The `pep` principal forwarding the token: a DPoP proof it admitted
    /// at its door ([`admit_dpop`]) may come again from it.
    pub pep: Option<&'a str>,
}

/// Verify an agent access token fully: signature, claims, revocation, that
/// every agent it names exists and is not retired, that its delegation chain
/// is still allowed, and its DPoP binding. Fresh results are cached
/// ([`crate::token_cache`]); the audience and the DPoP proof are checked on
/// every call.
pub async fn verify_agent_token(
    state: &AppState,
    token: &str,
    how: Presentation<'_>,
) -> Result<AgentCaller, ApiError> {
    let now = jiff::Timestamp::now().as_second();
    let cached = state.tokens.get(token, now);
    state
        .metrics
        .cache_lookup(crate::metrics::Cache::Token, cached.is_some());
    let verified = match cached {
        Some(v) => v,
        None => {
            let generation = state.tokens.generation();
            let v = verify_record(state, token).await?;
            state.tokens.put(token, v.clone(), generation);
            v
        }
    };
    let Verified {
        claims,
        chain,
        dpop_required,
    } = verified;
    let unauth = |why: &str| ApiError::Unauthenticated(format!("invalid access token: {why}"));
    let aud_ok = claims.aud == state.config.audience()
        || claims.aud == state.config.issuer()
        || how.audience.is_some_and(|a| a == claims.aud);
    if !aud_ok {
        return Err(unauth("it was issued for another audience"));
    }
    match (&claims.cnf, how.dpop) {
        (Some(_), _) if how.scheme == Some(Scheme::Bearer) => {
            return Err(unauth(
                "the token is DPoP-bound: send it as `Authorization: DPoP …` with a `DPoP` proof",
            ));
        }
        (Some(cnf), Some(evidence)) => {
            check_dpop(state, token, &cnf.jkt, evidence, how.pep, now).await?;
        }
        (Some(_), None) => {
            return Err(unauth(
                "the token is DPoP-bound: send it as `Authorization: DPoP …` with a `DPoP` proof",
            ));
        }
        (None, _) if how.scheme == Some(Scheme::Dpop) => {
            return Err(unauth("the `DPoP` scheme needs a DPoP-bound token"));
        }
        (None, _) => {
            if let Some(agent) = &dpop_required {
                return Err(unauth(&format!("`{agent}` requires DPoP-bound tokens")));
            }
        }
    }
    Ok(AgentCaller { claims, chain })
}

/// Everything about a token that needs the store.
pub(crate) async fn verify_record(state: &AppState, token: &str) -> Result<Verified, ApiError> {
    let unauth = |why: &str| ApiError::Unauthenticated(format!("invalid access token: {why}"));
    let claims = state.verify_jwt(token).await?;
    match state.store().token(&claims.jti).await? {
        Some(t) if !t.revoked => {}
        Some(_) => return Err(unauth("revoked")),
        None => return Err(unauth("unknown token id")),
    }
    let chain = chain_rows(state, &claims).await?;
    let path = delegation_path(state, &chain).await?;
    let manifests: Vec<_> = path.iter().map(|c| c.manifest()).collect();
    bridle_core::delegation::check_path(&manifests).map_err(|e| unauth(&e.to_string()))?;
    let dpop_required = manifests
        .iter()
        .find(|m| m.credentials.dpop_required)
        .map(|m| m.agent.to_string());
    Ok(Verified {
        claims,
        chain: chain.into(),
        dpop_required,
    })
}

/// The compiled records of a token's chain in delegation order: the
/// subject, then the actors from the first to the current one.
pub(crate) async fn delegation_path(
    state: &AppState,
    chain: &[AgentRow],
) -> Result<Vec<bridle_core::CompiledAgent>, ApiError> {
    let mut path = Vec::with_capacity(chain.len() + 1);
    if let Some((subject, actors)) = chain.split_first() {
        path.push(state.compiled(subject).await?);
        for row in actors.iter().rev() {
            path.push(state.compiled(row).await?);
        }
    }
    Ok(path)
}

/// How long a DPoP proof a `pep` admitted at its door may come again from
/// that `pep`: its later questions about the same agent request, up to a
/// held call's second decision after the approval wait.
const ADMITTED_FOR: i64 = 600;

/// The one-time-id kind of the DPoP proofs `pep` admitted signed by the
/// key `jkt`: a `jti` another key chose too is not the admitted proof.
fn admitted_kind(pep: &str, jkt: &str) -> String {
    format!("dpop@{pep}#{jkt}")
}

/// Check a DPoP proof for `token` (bound to `jkt`): signed by that key, for
/// that request and token, and either admitted by `pep` at its door
/// earlier, or fresh and used now for the first time.
async fn check_dpop(
    state: &AppState,
    token: &str,
    jkt: &str,
    evidence: DpopEvidence<'_>,
    pep: Option<&str>,
    now: i64,
) -> Result<jose::DpopProof, ApiError> {
    let invalid =
        |e: jose::JoseError| ApiError::Unauthenticated(format!("invalid DPoP proof: {e}"));
    let proof =
        jose::verify_dpop_unaged(evidence.proof, evidence.method, evidence.url, Some(token))
            .map_err(invalid)?;
    if proof.jkt != jkt {
        return Err(ApiError::Unauthenticated(
            "invalid access token: the DPoP proof is signed by another key".into(),
        ));
    }
    if let Some(pep) = pep {
        let at = jiff::Timestamp::from_second(now)
            .map_err(|_| ApiError::Unauthenticated("invalid DPoP proof: bad time".into()))?;
        if state
            .store()
            .jti_used(&admitted_kind(pep, &proof.jkt), &proof.jti, at)
            .await?
        {
            return Ok(proof);
        }
    }
    jose::check_dpop_iat(proof.iat, now).map_err(invalid)?;
    if !consume_dpop(state, &proof).await? {
        return Err(ApiError::Unauthenticated(
            "invalid DPoP proof: it was already used".into(),
        ));
    }
    Ok(proof)
}

/// A `pep` admits an agent request that came with a DPoP-bound `token` and
/// a proof (`POST /oauth/introspect` with the proof): the proof is checked
/// in full and used up, so a replay fails here on every replica, and it is
/// recorded as admitted by `pep` for [`ADMITTED_FOR`], so the `pep` may
/// forward it again while it handles that request.
pub(crate) async fn admit_dpop(
    state: &AppState,
    pep: &str,
    token: &str,
    jkt: &str,
    evidence: DpopEvidence<'_>,
) -> Result<(), ApiError> {
    let now = jiff::Timestamp::now().as_second();
    let proof = check_dpop(state, token, jkt, evidence, None, now).await?;
    let until = jiff::Timestamp::from_second(now + ADMITTED_FOR)
        .map_err(|_| ApiError::Unauthenticated("invalid DPoP proof: bad time".into()))?;
    state
        .store()
        .use_jti(&admitted_kind(pep, &proof.jkt), &proof.jti, until)
        .await?;
    Ok(())
}

/// Record a DPoP proof's `jti` as used, until its `iat` window has passed;
/// false when it was already used (a replay).
pub(crate) async fn consume_dpop(
    state: &AppState,
    proof: &jose::DpopProof,
) -> Result<bool, ApiError> {
    let until = jiff::Timestamp::from_second(proof.iat + DPOP_IAT_WINDOW + 5)
        .map_err(|_| ApiError::Unauthenticated("invalid DPoP proof: bad `iat`".into()))?;
    Ok(state.store().use_jti("dpop", &proof.jti, until).await?)
}

/// The token subject, then each actor of its `act` chain (outermost first);
/// none may be unknown or retired.
async fn chain_rows(state: &AppState, claims: &Claims) -> Result<Vec<AgentRow>, ApiError> {
    let unauth = |why: &str| ApiError::Unauthenticated(format!("invalid access token: {why}"));
    let mut subjects = vec![claims.sub.as_str()];
    let mut act = claims.act.as_ref();
    while let Some(a) = act {
        subjects.push(a.get("sub").and_then(|s| s.as_str()).unwrap_or_default());
        act = a.get("act");
    }
    let mut rows = Vec::with_capacity(subjects.len());
    for sub in subjects {
        let id: AgentId = sub.parse().map_err(|_| unauth("bad subject or actor"))?;
        let row = state
            .store()
            .agent(&id)
            .await?
            .ok_or_else(|| unauth("unknown agent"))?;
        if row.state == AgentState::Retired {
            return Err(unauth(&format!("agent `{id}` is retired")));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// A principal's API key, as presented from `origin`: refused while its
/// pair or source is locked, a failure counted and audited
/// ([`crate::throttle`]).
pub async fn authenticate_api_key(
    state: &AppState,
    key: &str,
    origin: &Origin,
) -> Result<Principal, ApiError> {
    let prefix = throttle::key_prefix(key);
    let attempt = Attempt {
        kind: Kind::ApiKey,
        identifier: &prefix,
        origin,
    };
    throttle::check(state, &attempt)?;
    match verify_api_key(state, key).await {
        Ok(p) => {
            state.throttle.success(&attempt);
            Ok(p)
        }
        Err(e @ ApiError::Unauthenticated(_)) => {
            throttle::failed(state, &attempt, None, None).await;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// An agent's access token presented by the agent itself from `origin`
/// (see [`verify_agent_token`]), throttled by source and audited when it
/// fails. Only the claimed subject is written, never the token.
async fn authenticate_agent_token(
    state: &AppState,
    token: &str,
    how: Presentation<'_>,
    origin: &Origin,
) -> Result<AgentCaller, ApiError> {
    // Tokens are locked by source only, so the identifier is needed only
    // when the token fails (no claim parsing on the decision path).
    let attempt = Attempt {
        kind: Kind::AccessToken,
        identifier: "",
        origin,
    };
    throttle::check(state, &attempt)?;
    match verify_agent_token(state, token, how).await {
        Err(e @ ApiError::Unauthenticated(_)) => {
            let claimed = jose::unverified_claim(token, "sub")
                .map_or_else(|| "-".to_owned(), |s| throttle::identifier(&s));
            let attempt = Attempt {
                identifier: &claimed,
                ..attempt
            };
            throttle::failed(state, &attempt, None, None).await;
            Err(e)
        }
        other => other,
    }
}

/// A principal's API key (stored hashed). Callers that answer a request
/// use [`authenticate_api_key`].
pub async fn verify_api_key(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    state
        .store()
        .principal_by_key(&hash_secret(key))
        .await?
        .ok_or_else(|| ApiError::Unauthenticated("unknown or deactivated API key".into()))
}

pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// The one `DPoP` header of a request (RFC 9449 §4.3 step 1).
pub(crate) fn dpop_header(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all("dpop").iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::Unauthenticated(
            "invalid DPoP proof: more than one `DPoP` header".into(),
        ));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| ApiError::Unauthenticated("invalid DPoP proof: malformed header".into()))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (scheme, token) = authorization(&parts.headers)?;
        let origin = Origin::of(parts, &state.config.auth_throttle);
        if !looks_like_jwt(token) {
            if scheme == Scheme::Dpop {
                return Err(ApiError::Unauthenticated(
                    "the `DPoP` scheme is for access tokens".into(),
                ));
            }
            return Ok(Self::Principal(
                authenticate_api_key(state, token, &origin).await?,
            ));
        }
        let url = format!("{}{}", state.config.issuer(), parts.uri.path());
        let proof = dpop_header(&parts.headers)?;
        let how = Presentation {
            audience: None,
            scheme: Some(scheme),
            dpop: proof.map(|proof| DpopEvidence {
                proof,
                method: parts.method.as_str(),
                url: &url,
            }),
            pep: None,
        };
        Ok(Self::Agent(Box::new(
            authenticate_agent_token(state, token, how, &origin).await?,
        )))
    }
}
