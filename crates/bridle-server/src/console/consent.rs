//! The consent page of the authorization code grant
//! (`/console/oauth/consent?request=…`): the agent's owner sees which
//! client asks (its name, and the host of its metadata document URL, the
//! only part that is verified), where the browser goes back to, the
//! resource and scope, and picks one of the active agents it owns, or
//! refuses. Signed in like every page (a browser that is not is sent to
//! the sign-in page and back); the answer is a console form, with its CSRF
//! token and the same-origin checks.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use bridle_core::id::AgentId;
use serde::Deserialize;

use super::{Chrome, ConsoleError, SignedIn, page, when};
use crate::error::ApiError;
use crate::service::authorize::{self, Consent};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct ConsentQuery {
    #[serde(default)]
    request: String,
}

#[derive(Template)]
#[template(path = "console/consent.html")]
struct ConsentPage {
    c: Chrome,
    request: String,
    client_name: String,
    client_id: String,
    client_host: String,
    redirect_uri: String,
    resource: String,
    scope: String,
    expires: String,
    agents: Vec<String>,
}

/// The page's policy: the console's, except that its form may also lead to
/// the client's redirect URI (browsers apply `form-action` to the
/// redirect that answers the form). An origin that is not plainly a
/// scheme, host and port is left out, and the redirect then fails closed.
fn csp(redirect_uri: &str) -> String {
    let origin = reqwest::Url::parse(redirect_uri)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| {
            o != "null"
                && o.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b':' | b'/' | b'.' | b'-' | b'[' | b']')
                })
        });
    match origin {
        Some(o) => super::CSP.replace("form-action 'self'", &format!("form-action 'self' {o}")),
        None => super::CSP.to_owned(),
    }
}

pub async fn page_for(
    State(state): State<AppState>,
    s: Result<SignedIn, ConsoleError>,
    query: Result<Query<ConsentQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ConsoleError> {
    let request = query.map(|q| q.0.request).unwrap_or_default();
    let s = match s {
        Ok(s) => s,
        Err(ConsoleError::SignIn | ConsoleError::Api(ApiError::Unauthenticated(_))) => {
            let back = format!("/console/oauth/consent?request={request}");
            return Ok(Redirect::to(&super::session::sign_in_for(&back)).into_response());
        }
        Err(e) => return Err(e),
    };
    let unknown = || {
        ConsoleError::from(ApiError::NotFound(
            "the authorization request is unknown, expired or already decided".into(),
        ))
    };
    // A request id is base64url; anything else cannot name one.
    if request.is_empty()
        || !request
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        return Err(unknown());
    }
    let req = authorize::pending(&state, &request)
        .await?
        .ok_or_else(unknown)?;
    let agents = authorize::consentable(&state, &s.principal)
        .await?
        .into_iter()
        .map(|a| a.id.to_string())
        .collect();
    let client_host = reqwest::Url::parse(req.client_id.as_str())
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let policy = csp(&req.redirect_uri);
    let mut response = page(
        ConsentPage {
            c: Chrome::new(&s, ""),
            request,
            client_name: req.client_name,
            client_id: req.client_id.to_string(),
            client_host,
            redirect_uri: req.redirect_uri,
            resource: req.resource.unwrap_or_else(|| state.config.audience()),
            scope: req.scope.unwrap_or_default(),
            expires: when(req.expires_at),
            agents,
        }
        .render(),
    )?;
    if let Ok(v) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    request: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    decision: String,
}

pub async fn decide(
    State(state): State<AppState>,
    s: SignedIn,
    form: Result<axum::Form<ConsentForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ConsoleError> {
    let form = form
        .map_err(|e| ApiError::BadRequest(format!("invalid form: {}", e.body_text())))?
        .0;
    s.check_csrf(&form.csrf)?;
    let consent = match form.decision.as_str() {
        "allow" => {
            let agent: AgentId = form
                .agent
                .parse()
                .map_err(|_| ApiError::Forbidden("choose one of the agents you own".into()))?;
            Consent::Allow(agent)
        }
        "deny" => Consent::Deny,
        other => return Err(ApiError::BadRequest(format!("unknown decision `{other}`")).into()),
    };
    let url = authorize::decide(&state, &s.principal, &form.request, consent).await?;
    Ok(Redirect::to(&url).into_response())
}
