//! `POST /oauth/token` with `grant_type=authorization_code` (RFC 6749
//! §4.1.3): a public client (`token_endpoint_auth_method: none`) redeems
//! the code its owner's consent produced, proving with its PKCE verifier
//! that it is the client that asked. The token is the agent's ordinary
//! access token (`sub` = the agent, `client_id` = the metadata document
//! URL), so every resource server accepts it unchanged and every
//! revocation of the agent reaches it. No refresh token is issued: the
//! client asks its owner again when the token expires.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use jiff::Timestamp;

use super::client::Client;
use super::grants::{Mint, active_agent, answer, dpop_binding, sign};
use super::{OAuthError, OAuthForm};
use crate::service::authorize::{self, Redemption};
use crate::state::AppState;

/// The grant type.
pub const GRANT: &str = "authorization_code";

fn bad_request(error: &'static str, d: impl Into<String>) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, error, d)
}

fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, OAuthError> {
    v.as_deref()
        .ok_or_else(|| bad_request("invalid_request", format!("{name} is missing")))
}

pub(super) async fn redeem(
    state: &AppState,
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<Response, OAuthError> {
    if super::client::basic(headers).is_some()
        || form.client_secret.is_some()
        || form.client_assertion.is_some()
    {
        return Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "the authorization code grant is for public clients: send client_id alone",
        ));
    }
    let r = Redemption {
        code: required(&form.code, "code")?,
        redirect_uri: required(&form.redirect_uri, "redirect_uri")?,
        client_id: required(&form.client_id, "client_id")?,
        code_verifier: required(&form.code_verifier, "code_verifier")?,
        resource: form.resource.as_deref(),
    };
    let code = authorize::redeem(state, &r)
        .await?
        .map_err(|e| bad_request(e.error, e.description))?;
    // The agent is checked again now: consent does not outlive a
    // suspension, a retirement or an expiry.
    let (row, compiled) = active_agent(state, &code.agent)
        .await
        .map_err(|e| match e.error {
            "invalid_client" => bad_request("invalid_grant", "the agent no longer exists"),
            _ => e,
        })?;
    let manifest = compiled.manifest();
    let cnf = dpop_binding(state, headers, manifest.credentials.dpop_required).await?;
    let client = Client {
        client_id: code.client_id.clone(),
        agent: row.id.clone(),
        method: "none",
    };
    let (jwt, claims) = sign(
        state,
        Mint {
            client: &client,
            grant: GRANT,
            sub: &row.id,
            aud: code
                .resource
                .clone()
                .unwrap_or_else(|| state.config.audience()),
            exp: Timestamp::now() + manifest.credentials.token_ttl,
            scope: code.scope.clone(),
            act: None,
            cnf,
            parent_jti: None,
            consented_by: Some(&code.principal),
            metric: crate::metrics::Grant::AuthorizationCode,
        },
    )
    .await?;
    if !authorize::issued(state, &code, &claims.jti).await? {
        return Err(bad_request(
            "invalid_grant",
            "the code was used twice; the token issued from it is revoked",
        ));
    }
    Ok(answer(jwt, claims, false))
}
