//! Signing in and out, and the signed-in principal of every other console
//! request ([`SignedIn`]). The API key is checked by the API's own
//! checkpoint (`auth::authenticate_api_key`: throttled, failures audited);
//! the session lives in the store (`service::console`).
//!
//! A state-changing request must come from a console page: its form's CSRF
//! token must be the session's, and a browser's `Origin` and
//! `Sec-Fetch-Site`, when sent, must name this origin.

use askama::Template;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use bridle_store::{Principal, SessionRow};
use serde::Deserialize;

use super::{ConsoleError, html};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::service::console as service;
use crate::state::AppState;
use crate::throttle::Origin;

/// The session cookie's name.
pub const COOKIE: &str = "bridle_session";

/// The principal signed in to the console, proved on this request: its
/// session is stored and unexpired and it is active now.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub principal: Principal,
    pub session: SessionRow,
    /// The cookie's value (to sign out).
    cookie: String,
}

impl SignedIn {
    /// The caller every service and capability proof is given.
    pub fn caller(&self) -> Caller {
        Caller::Principal(self.principal.clone())
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, token: &str) -> Result<(), ConsoleError> {
        use subtle::ConstantTimeEq as _;
        let ok: bool = token
            .as_bytes()
            .ct_eq(self.session.csrf_token.as_bytes())
            .into();
        if ok {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "the form's CSRF token is missing or wrong; reload the page and try again".into(),
            )
            .into())
        }
    }
}

/// The session cookie's value in `headers`, if one is sent.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Refuses a state-changing request a browser says came from elsewhere.
fn same_origin(parts: &Parts) -> Result<(), ConsoleError> {
    let refused = || {
        ConsoleError::from(ApiError::Forbidden(
            "a cross-site request is refused".into(),
        ))
    };
    let site = parts.headers.get("sec-fetch-site");
    if let Some(site) = site
        && !matches!(site.to_str(), Ok("same-origin" | "none"))
    {
        return Err(refused());
    }
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| refused())?;
        // Under `Referrer-Policy: no-referrer` a browser sends `Origin:
        // null` with its own forms; `Sec-Fetch-Site` then vouches for it.
        if origin == "null" {
            return if site.is_some() {
                Ok(())
            } else {
                Err(refused())
            };
        }
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .ok_or_else(refused)?;
        let bare = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        if bare != Some(host) {
            return Err(refused());
        }
    }
    Ok(())
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        if parts.method != Method::GET && parts.method != Method::HEAD {
            same_origin(parts)?;
        }
        let Some(value) = cookie(&parts.headers) else {
            return Err(ConsoleError::SignIn);
        };
        match service::resume(state, value).await? {
            Ok((session, principal)) => Ok(Self {
                principal,
                session,
                cookie: value.to_owned(),
            }),
            Err(_) => Err(ConsoleError::SignIn),
        }
    }
}

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignInPage<'a> {
    error: Option<&'a str>,
    /// Where to go once signed in (a console path, checked).
    next: Option<&'a str>,
    css: &'static str,
}

/// `next` if it is a path of the console (so signing in never sends the
/// browser elsewhere: no open redirect).
pub fn safe_next(next: &str) -> Option<&str> {
    let safe = next.starts_with("/console/")
        && next.len() <= 2048
        && !next.contains("//")
        && !next.contains('\\')
        && !next.contains("..")
        && !next.to_ascii_lowercase().contains("%2e")
        && next.bytes().all(|b| b.is_ascii_graphic());
    safe.then_some(next)
}

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

pub async fn sign_in_page(
    query: Result<axum::extract::Query<NextQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let next = query.map(|q| q.0.next).unwrap_or_default();
    html(
        StatusCode::OK,
        SignInPage {
            error: None,
            next: safe_next(&next),
            css: super::static_files::css_path(),
        }
        .render(),
    )
}

/// The sign-in page for `next`, as a path with its query.
pub fn sign_in_for(next: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC);
    format!("/console/signin?next={encoded}")
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    api_key: String,
    #[serde(default)]
    next: String,
}

/// The `Set-Cookie` of a session (`None` ends it): `HttpOnly`,
/// `SameSite=Strict`, path `/console`, `Secure` over https.
fn set_cookie(state: &AppState, value: Option<&str>) -> Result<HeaderValue, ConsoleError> {
    let secure = if state.config.issuer().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let text = match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            state.config.console.session_max_secs
        ),
        None => format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).map_err(|e| ApiError::Internal(e.to_string()).into())
}

pub async fn sign_in(
    State(state): State<AppState>,
    origin: Origin,
    parts: Parts,
    form: Result<axum::Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ConsoleError> {
    same_origin(&parts)?;
    let refused = |status: StatusCode, why: &str, next: Option<&str>| {
        html(
            status,
            SignInPage {
                error: Some(why),
                next,
                css: super::static_files::css_path(),
            }
            .render(),
        )
    };
    let Ok(axum::Form(form)) = form else {
        return Ok(refused(StatusCode::BAD_REQUEST, "enter an API key", None));
    };
    let next = safe_next(&form.next);
    let key = form.api_key.trim();
    if key.is_empty() {
        return Ok(refused(StatusCode::BAD_REQUEST, "enter an API key", next));
    }
    let principal = match crate::auth::authenticate_api_key(&state, key, &origin).await {
        Ok(p) => p,
        Err(ApiError::Unauthenticated(_)) => {
            return Ok(refused(
                StatusCode::UNAUTHORIZED,
                "that API key is unknown or its principal is deactivated",
                next,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let (value, _) = service::create(&state, &principal).await?;
    let mut response = Redirect::to(next.unwrap_or("/console/")).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&state, Some(&value))?);
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    s: SignedIn,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ConsoleError> {
    let token = form.map(|f| f.0.csrf).unwrap_or_default();
    s.check_csrf(&token)?;
    service::end(&state, &s.cookie, &s.principal).await?;
    let mut response = Redirect::to("/console/signin").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&state, None)?);
    Ok(response)
}
