//! `GET /oauth/authorize`: the authorization endpoint of the authorization
//! code grant (RFC 6749 §4.1) with PKCE (RFC 7636, `S256` only) and the
//! `iss` response parameter (RFC 9207). The client is identified by the
//! URL of its metadata document; the request is kept and the browser sent
//! to the console, where the agent's owner consents
//! (`console/consent.rs`). Errors before the redirect URI is known to be
//! the client's are an HTML page, never a redirect.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::service::authorize::{self, AuthorizeParams, Refusal};
use crate::state::AppState;

/// The query of an authorization request.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthorizeQuery {
    /// The https URL of the client's metadata document.
    client_id: Option<String>,
    /// One of the document's `redirect_uris`, exactly.
    redirect_uri: Option<String>,
    /// `code`.
    response_type: Option<String>,
    /// Returned unchanged on the redirect.
    state: Option<String>,
    /// BASE64URL(SHA-256(code_verifier)) (RFC 7636).
    code_challenge: Option<String>,
    /// `S256` (`plain` is refused).
    code_challenge_method: Option<String>,
    /// RFC 8707: the resource server the token is for; it becomes `aud`.
    resource: Option<String>,
    /// Space-separated tool names (or globs) to narrow the token to.
    scope: Option<String>,
}

/// A redirect that says so in HTML too, and is never cached.
fn see_other(location: &str) -> Response {
    let mut r = Redirect::to(location).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Start an interactive client's authorization: check the client and the
/// request, keep it, and send the browser to the owner's consent page.
#[utoipa::path(
    get,
    path = "/oauth/authorize",
    tag = "oauth",
    operation_id = "authorize",
    security(()),
    params(AuthorizeQuery),
    responses(
        (status = 303, description = "To the console's consent page (`/console/oauth/consent?request=…`) when the request is kept; to the client's `redirect_uri` with `error`, `error_description`, `state` and `iss` when it is refused after the redirect URI was checked",
            headers(("Location" = String, description = "Where the browser goes next"))),
        (status = 400, description = "An HTML error page: the client metadata document cannot be fetched or is not acceptable, or `redirect_uri` is missing or not one of its `redirect_uris` (never redirected)", content_type = "text/html"),
        (status = 503, description = "An HTML error page: the store cannot be used", content_type = "text/html"),
    ),
)]
pub async fn authorize(
    State(state): State<AppState>,
    query: Result<Query<AuthorizeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return crate::console::error_page(ApiError::BadRequest(
            "the authorization request's query is malformed (a parameter given twice?)".into(),
        ));
    };
    let params = AuthorizeParams {
        client_id: q.client_id.as_deref(),
        redirect_uri: q.redirect_uri.as_deref(),
        response_type: q.response_type.as_deref(),
        state: q.state.as_deref(),
        code_challenge: q.code_challenge.as_deref(),
        code_challenge_method: q.code_challenge_method.as_deref(),
        resource: q.resource.as_deref(),
        scope: q.scope.as_deref(),
    };
    match authorize::begin(&state, &params).await {
        Ok(Ok(id)) => see_other(&format!("/console/oauth/consent?request={id}")),
        Ok(Err(Refusal::Redirect(url))) => see_other(&url),
        Ok(Err(Refusal::Page(why))) => crate::console::error_page(ApiError::BadRequest(why)),
        Err(e) => crate::console::error_page(e.into()),
    }
}
