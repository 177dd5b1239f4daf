//! `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009).
//! Both take an agent's client authentication (as the token endpoint does)
//! or a principal's API key as `Authorization: Bearer`; introspection by a
//! principal needs role `admin` or `pep`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bridle_core::engine::AgentState;
use bridle_store::{Principal, Role};
use serde::Serialize;
use utoipa::ToSchema;

use super::client::{self, Client};
use super::{OAuthError, OAuthErrorBody, OAuthForm, no_store, read_form};
use crate::auth::{DpopEvidence, Scheme, authenticate_api_key, authorization, looks_like_jwt};
use crate::error::ApiError;
use crate::state::AppState;
use crate::throttle::Origin;

/// Who is asking.
enum Asker {
    Principal(Principal),
    Client(Client),
}

impl Asker {
    fn actor(&self) -> String {
        match self {
            Self::Principal(p) => format!("principal:{}", p.id),
            Self::Client(c) => format!("agent:{}", c.agent),
        }
    }
}

async fn asker(
    state: &AppState,
    headers: &HeaderMap,
    form: &OAuthForm,
    origin: &Origin,
) -> Result<Asker, OAuthError> {
    if client::basic(headers).is_none()
        && let Ok((Scheme::Bearer, key)) = authorization(headers)
    {
        let unauthorized = || {
            OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unknown or deactivated API key",
            )
        };
        if looks_like_jwt(key) {
            return Err(unauthorized());
        }
        return match authenticate_api_key(state, key, origin).await {
            Ok(p) => Ok(Asker::Principal(p)),
            Err(ApiError::Unauthenticated(_)) => Err(unauthorized()),
            Err(other) => Err(other.into()),
        };
    }
    client::authenticate(state, headers, form, origin)
        .await
        .map(Asker::Client)
}

fn token_param(form: &OAuthForm) -> Result<&str, OAuthError> {
    form.token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "token is missing",
            )
        })
}

fn invalid_dpop(why: &str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", why)
}

/// The DPoP proof a `pep` forwards with the token it introspects: all three
/// of `dpop_proof`, `dpop_htm` and `dpop_htu`, or none.
fn forwarded_dpop<'a>(
    asker: &'a Asker,
    form: &'a OAuthForm,
) -> Result<Option<(&'a str, DpopEvidence<'a>)>, OAuthError> {
    let (proof, method, url) = match (&form.dpop_proof, &form.dpop_htm, &form.dpop_htu) {
        (None, None, None) => return Ok(None),
        (Some(p), Some(m), Some(u)) => (p, m, u),
        _ => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "`dpop_proof`, `dpop_htm` and `dpop_htu` go together",
            ));
        }
    };
    match asker {
        Asker::Principal(p) if p.has_role(Role::Pep) => {
            Ok(Some((p.id.as_str(), DpopEvidence { proof, method, url })))
        }
        _ => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a forwarded DPoP proof is for `pep` principals",
        )),
    }
}

/// An introspection answer (RFC 7662 §2.2); only `active` when inactive.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Introspection {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    /// The delegation chain (RFC 8693 §4.1), current actor outermost.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    act: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    /// `Bearer`, or `DPoP` for a sender-constrained token.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    /// RFC 9449 §6.2: `{jkt}` of a DPoP-bound token.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    cnf: Option<crate::tokens::Confirmation>,
}

/// Whether a token is active, and its claims (RFC 7662). Active means: a
/// valid signature by a current key, unexpired, not revoked, every agent of
/// its chain active, and its delegation chain still allowed.
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    tag = "oauth",
    operation_id = "introspect",
    security(("client_secret_basic" = []), ("bearer" = [])),
    request_body(content = OAuthForm, content_type = "application/x-www-form-urlencoded",
        description = "`token`, with the caller's client authentication, or the API key of a principal with role `admin` or `pep` as `Authorization: Bearer`"),
    responses(
        (status = 200, description = "`{active: false}` for any token that is not active", body = Introspection,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "`invalid_request`; `invalid_dpop_proof` for a forwarded DPoP proof that is refused (replayed, another key, request or token)", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client`", body = OAuthErrorBody),
        (status = 403, description = "`insufficient_scope`: a principal without role `admin` or `pep`", body = OAuthErrorBody),
        (status = 413, description = "`invalid_request`: the body is too large", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody),
    ),
)]
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    origin: Origin,
    form: Result<axum::Form<OAuthForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let result = async {
        let form = read_form(form)?;
        let asker = asker(&state, &headers, &form, &origin).await?;
        if let Asker::Principal(p) = &asker
            && !(p.has_role(Role::Admin) || p.has_role(Role::Pep))
        {
            // What a token is and whom it speaks for is for enforcement
            // points and admins, not for every principal.
            return Err(OAuthError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "introspection by a principal requires the `admin` or `pep` role",
            ));
        }
        let token = token_param(&form)?;
        let dpop = forwarded_dpop(&asker, &form)?;
        let verified = match crate::auth::verify_record(&state, token).await {
            Ok(v) => v,
            Err(ApiError::Unauthenticated(_)) => return Ok(no_store(Introspection::default())),
            Err(other) => return Err(OAuthError::from(other)),
        };
        if verified.chain.iter().any(|r| r.state != AgentState::Active) {
            return Ok(no_store(Introspection::default()));
        }
        let c = verified.claims;
        if let Some((pep, evidence)) = dpop {
            let Some(cnf) = &c.cnf else {
                return Err(invalid_dpop("the token is not DPoP-bound"));
            };
            match crate::auth::admit_dpop(&state, pep, token, &cnf.jkt, evidence).await {
                Ok(()) => {}
                Err(ApiError::Unauthenticated(why)) => return Err(invalid_dpop(&why)),
                Err(other) => return Err(OAuthError::from(other)),
            }
        }
        Ok(no_store(Introspection {
            active: true,
            token_type: Some(if c.cnf.is_some() { "DPoP" } else { "Bearer" }),
            sub: Some(c.sub),
            act: c.act,
            client_id: Some(c.client_id),
            scope: c.scope,
            exp: Some(c.exp),
            iat: Some(c.iat),
            jti: Some(c.jti.into_string()),
            iss: Some(c.iss),
            aud: Some(c.aud),
            cnf: c.cnf,
        }))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Revoke an access token and every token exchanged from it (RFC 7009).
/// Answers 200 for any well-formed request by an authenticated caller,
/// whether or not the token was valid; revoking another client's token is
/// refused.
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    tag = "oauth",
    operation_id = "revoke",
    security(("client_secret_basic" = []), ("bearer" = [])),
    request_body(content = OAuthForm, content_type = "application/x-www-form-urlencoded",
        description = "`token` (and optionally `token_type_hint`), with the caller's client authentication, or the API key of an admin or of the agent's owner as `Authorization: Bearer`"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, description = "`invalid_request`, or `unauthorized_client` for a token the caller may not revoke", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client`", body = OAuthErrorBody),
        (status = 413, description = "`invalid_request`: the body is too large", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody),
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    origin: Origin,
    form: Result<axum::Form<OAuthForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let result = async {
        let form = read_form(form)?;
        let asker = asker(&state, &headers, &form, &origin).await?;
        let token = token_param(&form)?;
        // An expired, forged or foreign token needs no revoking.
        let Ok(claims) = state.verify_jwt(token).await else {
            return Ok(StatusCode::OK.into_response());
        };
        let allowed = match &asker {
            Asker::Client(c) => {
                c.client_id.as_str() == claims.client_id || c.agent.as_str() == claims.sub
            }
            Asker::Principal(p) => p.has_role(Role::Admin) || owns(&state, p, &claims.sub).await?,
        };
        if !allowed {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "the token was not issued to this client",
            ));
        }
        crate::service::tokens::revoke(&state, &asker.actor(), &claims).await?;
        Ok(StatusCode::OK.into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn owns(state: &AppState, p: &Principal, agent: &str) -> Result<bool, OAuthError> {
    use bridle_store::RegistryRead;
    let Ok(id) = agent.parse() else {
        return Ok(false);
    };
    Ok(state
        .store()
        .agent(&id)
        .await?
        .is_some_and(|row| row.owner == p.id))
}
