//! The web console at `/console/`: server-rendered HTML (askama templates
//! in `templates/console/`), progressively enhanced with the htmx file
//! embedded here, no external resource of any kind. Signed in with an API
//! key (`session.rs`), every page reads what the signed-in principal may
//! see through `access.rs` and every action goes through the same
//! capability proofs and services as the API, as that principal.
//!
//! Every response carries a strict CSP (no inline script or style, nothing
//! from another origin, no framing) and `nosniff`/`no-referrer`; errors are
//! HTML pages with the API's public message (a 5xx says only a request id).

mod audit;
mod consent;
mod inbox;
mod pages;
mod permissions;
mod posture;
mod session;
mod static_files;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

pub use posture::ChartCache;
pub use session::SignedIn;

/// `[console]`: how long a console session lasts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// A session unused this long ends (seconds; default 30 minutes).
    pub session_idle_secs: i64,
    /// A session ends this long after sign-in, used or not (seconds;
    /// default 12 hours).
    pub session_max_secs: i64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            session_idle_secs: 30 * 60,
            session_max_secs: 12 * 60 * 60,
        }
    }
}

/// The policy of every console page: scripts, styles and images from the
/// console itself only, forms only to it, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The policy of a chart: an SVG document (drawn with presentation
/// attributes and inline styles), never a script, never framed.
pub const SVG_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

/// The console's routes (merged into the API's router).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(pages::inventory))
        .route(
            "/console/signin",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/console/signout", post(session::sign_out))
        .route("/console/agents/{id}", get(pages::agent))
        .route("/console/agents/{id}/lifecycle", post(pages::lifecycle))
        .route(
            "/console/agents/{id}/elevations/{elevation}/end",
            post(pages::end_elevation),
        )
        .route("/console/approvals", get(inbox::inbox))
        .route("/console/approvals/pending", get(inbox::pending))
        .route("/console/approvals/{id}/vote", post(inbox::vote))
        .route(
            "/console/oauth/consent",
            get(consent::page_for).post(consent::decide),
        )
        .route("/console/audit", get(audit::list))
        .route("/console/audit/{seq}", get(audit::event))
        .route("/console/posture", get(posture::page))
        .route("/console/charts/{name}", get(posture::chart))
        .route("/console/static/{name}", get(static_files::serve))
        .route("/console/{*rest}", axum::routing::any(not_found))
        .layer(axum::middleware::from_fn(headers))
}

async fn not_found() -> ConsoleError {
    ConsoleError::Api(ApiError::NotFound("no such page".into()))
}

/// The security headers of every console response. A response that set
/// its own policy (a chart) keeps it.
async fn headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    secure(response.headers_mut());
    response
}

/// The console's security headers on `h` (a policy already set is kept).
pub fn secure(h: &mut axum::http::HeaderMap) {
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// An error page outside the console's routes (the authorization
/// endpoint's), with the console's security headers.
pub fn error_page(e: ApiError) -> Response {
    let mut response = ConsoleError::Api(e).into_response();
    secure(response.headers_mut());
    response
}

/// What every page's layout shows: the principal, its roles, the CSRF token
/// of the sign-out form, and which nav entry is current.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub who: String,
    pub roles: String,
    pub csrf: String,
    pub nav: &'static str,
    pub css: &'static str,
    pub js: &'static str,
}

impl Chrome {
    pub fn new(s: &SignedIn, nav: &'static str) -> Self {
        let p = &s.principal;
        let roles: Vec<&str> = p.roles.iter().map(|r| r.as_str()).collect();
        Self {
            who: p.id.to_string(),
            roles: roles.join(", "),
            csrf: s.session.csrf_token.clone(),
            nav,
            css: static_files::css_path(),
            js: static_files::htmx_path(),
        }
    }
}

/// A console answer that went wrong: an HTML page with the status and
/// the API's public message, or a redirect to the sign-in page.
#[derive(Debug)]
pub enum ConsoleError {
    SignIn,
    Api(ApiError),
}

impl<E: Into<ApiError>> From<E> for ConsoleError {
    fn from(e: E) -> Self {
        Self::Api(e.into())
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    detail: &'a str,
    css: &'static str,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let e = match self {
            Self::SignIn => return Redirect::to("/console/signin").into_response(),
            Self::Api(ApiError::Unauthenticated(_)) => {
                return Redirect::to("/console/signin").into_response();
            }
            Self::Api(e) => e,
        };
        let status = e.status();
        let detail = e.public_detail();
        let page = ErrorPage {
            status: status.as_u16(),
            title: e.title(),
            detail: &detail,
            css: static_files::css_path(),
        };
        let mut response = html(status, page.render());
        if let ApiError::TooManyRequests { retry_after } = e {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

/// A rendered page as an HTML response; a template that fails to render
/// is an internal error page without its text.
pub fn html(status: StatusCode, rendered: Result<String, askama::Error>) -> Response {
    match rendered {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            let id = crate::error::logged(&format!("console template: {e}"));
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("internal error (request id {id})"),
            )
                .into_response()
        }
    }
}

/// A page (status 200).
pub fn page(rendered: Result<String, askama::Error>) -> Result<Response, ConsoleError> {
    Ok(html(StatusCode::OK, rendered))
}

/// An instant as the console shows it (UTC, to the second).
pub fn when(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}
