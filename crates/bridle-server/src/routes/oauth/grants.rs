//! `POST /oauth/token`: the client-credentials grant and token exchange
//! (RFC 8693) for delegation, each optionally bound to the client's DPoP key.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bridle_core::delegation::{self, DelegationError};
use bridle_core::engine::AgentState;
use bridle_core::id::Jti;
use bridle_core::{CompiledAgent, id::AgentId};
use bridle_store::{AgentRow, RegistryRead};
use jiff::Timestamp;

use super::client::{self, Client};
use super::{
    ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, OAuthError, OAuthErrorBody, OAuthForm, TOKEN_EXCHANGE,
    TokenResponse, no_store, read_form,
};
use crate::error::ApiError;
use crate::jose;
use crate::service::tokens;
use crate::state::AppState;
use crate::tokens::Confirmation;

fn bad_request(error: &'static str, d: impl Into<String>) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, error, d)
}

/// Issue an access token to an agent: client credentials, token exchange
/// for delegation, or an authorization code its owner consented to.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "oauth",
    operation_id = "token",
    security(("client_secret_basic" = []), ()),
    request_body(
        content = OAuthForm,
        content_type = "application/x-www-form-urlencoded",
        description = "`grant_type` with its parameters. Client authentication is exactly one of `client_secret_basic` (the Authorization header), `client_secret_post` (`client_id` and `client_secret`) or `private_key_jwt` (`client_assertion_type` and `client_assertion`); with `authorization_code` none (a public client: `code`, `redirect_uri`, `client_id` and the PKCE `code_verifier`). A `DPoP` header binds the token to that key (RFC 9449); agents whose manifest sets `credentials.dpop: required` must send one",
    ),
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof for `POST` of this endpoint (RFC 9449)")),
    responses(
        (status = 200, description = "The access token", body = TokenResponse,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "`invalid_request`, `unsupported_grant_type`, `invalid_grant` (an authorization code unknown, expired, used before, or not matching its client, redirect URI or PKCE verifier), `unauthorized_client` (the agent is suspended, retired or expired), `invalid_scope` (scope would widen), `invalid_target` (delegation not allowed or too deep) or `invalid_dpop_proof`", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client`: unknown client, wrong secret or bad client assertion", body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"bridle\"`"))),
        (status = 413, description = "`invalid_request`: the body is larger than the configured limit", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`: the store cannot be used", body = OAuthErrorBody),
    ),
)]
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    origin: crate::throttle::Origin,
    form: Result<axum::Form<OAuthForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let result = match read_form(form) {
        Ok(form) => issue(&state, &headers, &form, &origin).await,
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| {
        state.metrics.token_refused(e.error);
        e.into_response()
    })
}

async fn issue(
    state: &AppState,
    headers: &HeaderMap,
    form: &OAuthForm,
    origin: &crate::throttle::Origin,
) -> Result<Response, OAuthError> {
    // A public client: no client authentication, the code and its PKCE
    // verifier prove the request.
    if form.grant_type.as_deref() == Some(super::code::GRANT) {
        return super::code::redeem(state, headers, form).await;
    }
    let client = client::authenticate(state, headers, form, origin).await?;
    match form.grant_type.as_deref() {
        Some("client_credentials") => client_credentials(state, headers, form, &client).await,
        Some(TOKEN_EXCHANGE) => exchange(state, headers, form, &client).await,
        Some(other) => Err(bad_request(
            "unsupported_grant_type",
            format!("`{other}` is not supported here"),
        )),
        None => Err(bad_request("invalid_request", "grant_type is missing")),
    }
}

/// The calling agent, which must be active and not expired.
pub(super) async fn active_agent(
    state: &AppState,
    id: &AgentId,
) -> Result<(AgentRow, CompiledAgent), OAuthError> {
    let unknown = || {
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong credentials",
        )
    };
    let row = state.store().agent(id).await?.ok_or_else(unknown)?;
    if row.state != AgentState::Active {
        return Err(bad_request(
            "unauthorized_client",
            format!("agent `{}` is {}", row.id, row.state.as_str()),
        ));
    }
    let compiled = state.compiled(&row).await.map_err(ApiError::from)?;
    let today = Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    if today > compiled.manifest().expires {
        return Err(bad_request(
            "unauthorized_client",
            format!("agent `{}` has expired", row.id),
        ));
    }
    Ok((row, compiled))
}

/// `aud` from RFC 8707 `resource`, or the server's default audience.
fn audience(state: &AppState, form: &OAuthForm) -> Result<String, OAuthError> {
    match &form.resource {
        Some(r) if crate::service::authorize::valid_resource(r) => Ok(r.clone()),
        Some(_) => Err(bad_request(
            "invalid_target",
            "resource must be an absolute URI without a fragment",
        )),
        None => Ok(state.config.audience()),
    }
}

/// The DPoP key a new token is bound to: the proof in the request's `DPoP`
/// header, checked and used up; required when `required`.
pub(super) async fn dpop_binding(
    state: &AppState,
    headers: &HeaderMap,
    required: bool,
) -> Result<Option<Confirmation>, OAuthError> {
    let invalid = |d: String| bad_request("invalid_dpop_proof", d);
    let proof = crate::auth::dpop_header(headers).map_err(|e| invalid(e.to_string()))?;
    let Some(proof) = proof else {
        return if required {
            Err(invalid(
                "this agent's tokens must be DPoP-bound: send a `DPoP` proof".into(),
            ))
        } else {
            Ok(None)
        };
    };
    let url = format!("{}/oauth/token", state.config.issuer());
    let now = Timestamp::now().as_second();
    let checked =
        jose::verify_dpop(proof, "POST", &url, None, now).map_err(|e| invalid(e.to_string()))?;
    let fresh = crate::auth::consume_dpop(state, &checked)
        .await
        .map_err(|e| match e {
            ApiError::Unauthenticated(why) => invalid(why),
            other => other.into(),
        })?;
    if !fresh {
        return Err(invalid("the DPoP proof was already used".into()));
    }
    Ok(Some(Confirmation { jkt: checked.jkt }))
}

/// What differs between the grants when a token is minted.
pub(super) struct Mint<'a> {
    pub(super) client: &'a Client,
    pub(super) grant: &'static str,
    pub(super) sub: &'a AgentId,
    pub(super) aud: String,
    pub(super) exp: Timestamp,
    pub(super) scope: Option<String>,
    pub(super) act: Option<serde_json::Value>,
    pub(super) cnf: Option<Confirmation>,
    pub(super) parent_jti: Option<&'a Jti>,
    pub(super) consented_by: Option<&'a bridle_core::id::PrincipalId>,
    pub(super) metric: crate::metrics::Grant,
}

/// Sign, record (for revocation), audit, and answer.
async fn mint(state: &AppState, m: Mint<'_>) -> Result<Response, OAuthError> {
    let exchange = m.metric == crate::metrics::Grant::TokenExchange;
    let (jwt, claims) = sign(state, m).await?;
    Ok(answer(jwt, claims, exchange))
}

/// Sign, record (for revocation) and audit a token, counted by grant.
pub(super) async fn sign(
    state: &AppState,
    m: Mint<'_>,
) -> Result<(String, crate::tokens::Claims), OAuthError> {
    let (jwt, claims) = tokens::issue(
        state,
        tokens::Issue {
            client_id: &m.client.client_id,
            client_agent: &m.client.agent,
            client_auth: m.client.method,
            grant: m.grant,
            sub: m.sub,
            aud: m.aud,
            exp: m.exp,
            scope: m.scope,
            act: m.act,
            cnf: m.cnf,
            parent_jti: m.parent_jti,
            consented_by: m.consented_by,
        },
    )
    .await?;
    state.metrics.token_issued(m.metric);
    Ok((jwt, claims))
}

/// The token response (RFC 6749 §5.1; RFC 8693 §2.2.1 for an exchange).
pub(super) fn answer(jwt: String, claims: crate::tokens::Claims, exchange: bool) -> Response {
    let now = Timestamp::now();
    no_store(TokenResponse {
        access_token: jwt,
        token_type: if claims.cnf.is_some() {
            "DPoP"
        } else {
            "Bearer"
        },
        expires_in: (claims.exp - now.as_second()).max(0),
        scope: claims.scope,
        issued_token_type: exchange.then_some(ACCESS_TOKEN_TYPE),
    })
}

async fn client_credentials(
    state: &AppState,
    headers: &HeaderMap,
    form: &OAuthForm,
    client: &Client,
) -> Result<Response, OAuthError> {
    let (row, compiled) = active_agent(state, &client.agent).await?;
    let manifest = compiled.manifest();
    let aud = audience(state, form)?;
    let scope = delegation::narrow(None, form.scope.as_deref())
        .map_err(|e| bad_request("invalid_scope", e.to_string()))?;
    let cnf = dpop_binding(state, headers, manifest.credentials.dpop_required).await?;
    mint(
        state,
        Mint {
            client,
            grant: "client_credentials",
            sub: &row.id,
            aud,
            exp: Timestamp::now() + manifest.credentials.token_ttl,
            scope,
            act: None,
            cnf,
            parent_jti: None,
            consented_by: None,
            metric: crate::metrics::Grant::ClientCredentials,
        },
    )
    .await
}

/// A token presented to the exchange, verified as for a decision but for
/// its audience (any resource server's token may be exchanged).
async fn presented_token(
    state: &AppState,
    token: Option<&str>,
    kind: Option<&str>,
    what: &str,
) -> Result<crate::token_cache::Verified, OAuthError> {
    let token =
        token.ok_or_else(|| bad_request("invalid_request", format!("{what} is missing")))?;
    if !matches!(kind, Some(ACCESS_TOKEN_TYPE | JWT_TOKEN_TYPE)) {
        return Err(bad_request(
            "invalid_request",
            format!("{what}_type must be `{ACCESS_TOKEN_TYPE}`"),
        ));
    }
    crate::auth::verify_record(state, token)
        .await
        .map_err(|e| match e {
            ApiError::Unauthenticated(why) => {
                bad_request("invalid_request", format!("{what}: {why}"))
            }
            other => other.into(),
        })
}

/// RFC 8693: the client (the delegate) presents the delegator's token and
/// gets a token with `sub` = the delegator and `act` naming itself.
async fn exchange(
    state: &AppState,
    headers: &HeaderMap,
    form: &OAuthForm,
    client: &Client,
) -> Result<Response, OAuthError> {
    if form
        .requested_token_type
        .as_deref()
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(bad_request(
            "invalid_request",
            format!("only `{ACCESS_TOKEN_TYPE}` can be issued"),
        ));
    }
    let (delegate, compiled) = active_agent(state, &client.agent).await?;
    let subject = presented_token(
        state,
        form.subject_token.as_deref(),
        form.subject_token_type.as_deref(),
        "subject_token",
    )
    .await?;
    if form.actor_token.is_some() || form.actor_token_type.is_some() {
        let actor = presented_token(
            state,
            form.actor_token.as_deref(),
            form.actor_token_type.as_deref(),
            "actor_token",
        )
        .await?;
        if actor.claims.sub != delegate.id.as_str() || actor.claims.act.is_some() {
            return Err(bad_request(
                "invalid_request",
                "actor_token must be the authenticated client's own, undelegated token",
            ));
        }
    }
    if let Some(row) = subject.chain.iter().find(|r| r.state != AgentState::Active) {
        return Err(bad_request(
            "invalid_request",
            format!(
                "subject_token: agent `{}` is {}",
                row.id,
                row.state.as_str()
            ),
        ));
    }
    // The delegation path: the subject, the actors first to current, then
    // the new delegate.
    let mut path = crate::auth::delegation_path(state, &subject.chain).await?;
    if subject.chain.iter().any(|r| r.id == delegate.id) {
        return Err(bad_request(
            "invalid_target",
            format!("`{}` is already in the delegation chain", delegate.id),
        ));
    }
    path.push(compiled.clone());
    let manifests: Vec<_> = path.iter().map(|c| c.manifest()).collect();
    delegation::check_path(&manifests).map_err(|e| bad_request("invalid_target", e.to_string()))?;
    let scope = delegation::narrow(subject.claims.scope.as_deref(), form.scope.as_deref())
        .map_err(|e| match e {
            DelegationError::BadScope(_) | DelegationError::Widens(_) => {
                bad_request("invalid_scope", e.to_string())
            }
            other => bad_request("invalid_target", other.to_string()),
        })?;
    let dpop_required = manifests.iter().any(|m| m.credentials.dpop_required);
    let cnf = dpop_binding(state, headers, dpop_required).await?;
    let aud = audience(state, form)?;
    let act = match &subject.claims.act {
        Some(prior) => serde_json::json!({ "sub": delegate.id.as_str(), "act": prior }),
        None => serde_json::json!({ "sub": delegate.id.as_str() }),
    };
    // The chain starts with the token's subject.
    let Some(subject_row) = subject.chain.first() else {
        return Err(bad_request("invalid_request", "subject_token: no subject"));
    };
    // Never outlives the token it came from.
    let exp = (Timestamp::now() + compiled.manifest().credentials.token_ttl).min(
        Timestamp::from_second(subject.claims.exp)
            .map_err(|_| bad_request("invalid_request", "subject_token: bad `exp`"))?,
    );
    mint(
        state,
        Mint {
            client,
            grant: TOKEN_EXCHANGE,
            sub: &subject_row.id,
            aud,
            exp,
            scope,
            act: Some(act),
            cnf,
            parent_jti: Some(&subject.claims.jti),
            consented_by: None,
            metric: crate::metrics::Grant::TokenExchange,
        },
    )
    .await
}
