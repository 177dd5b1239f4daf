//! OAuth 2.0 for agents: the token endpoint with the client-credentials
//! grant (RFC 6749 §4.4) and token exchange (RFC 8693), client
//! authentication by secret or `private_key_jwt` (RFC 7523), RFC 8707
//! `resource`, RFC 9068 JWT access tokens, optionally DPoP-bound (RFC 9449),
//! introspection (RFC 7662), revocation (RFC 7009), JWKS (RFC 7517) and
//! metadata (RFC 8414). Errors use the OAuth error format, not
//! problem+json, as clients expect.

#![expect(
    clippy::disallowed_methods,
    reason = "the OAuth endpoints are their own authentication checkpoint: a client is authenticated (secret, assertion, DPoP) from the store before anything else"
)]

pub mod authorize;
pub mod client;
pub mod code;
pub mod grants;
pub mod introspect;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// `Retry-After` seconds of a 429.
    retry_after: Option<u64>,
}

impl OAuthError {
    pub(crate) fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            retry_after: None,
        }
    }

    /// 429 while the client (from this source) or the source is locked
    /// after too many failed authentications ([`crate::throttle`]). RFC 6749
    /// has no code for it; `temporarily_unavailable` says "come back".
    pub(crate) fn throttled(t: crate::throttle::Throttled) -> Self {
        Self {
            retry_after: Some(t.retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                t.to_string(),
            )
        }
    }
}

/// An OAuth error response (RFC 6749 §5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody<'a> {
    /// `invalid_request`, `invalid_client`, `invalid_grant`,
    /// `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`, `invalid_target`,
    /// `insufficient_scope`, `temporarily_unavailable` or `server_error`.
    #[schema(example = "invalid_client")]
    error: &'a str,
    error_description: &'a str,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = OAuthErrorBody {
            error: self.error,
            error_description: &self.description,
        };
        let mut r = (self.status, Json(body)).into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"bridle\""),
            );
        }
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.error == "invalid_dpop_proof" {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(DPOP_CHALLENGE),
            );
        }
        r
    }
}

/// An API error in the OAuth error format (RFC 6749 §5.2, RFC 7009 §2.2.1,
/// RFC 7662 §2.3): the status stays the API's, so a client error stays a
/// client error; only the store being unavailable is a 503, and the detail
/// of a 5xx goes to the log, never to the client.
impl From<ApiError> for OAuthError {
    fn from(e: ApiError) -> Self {
        let status = e.status();
        let client =
            |error: &'static str, description: String| Self::new(status, error, description);
        match e {
            ApiError::BadRequest(d) | ApiError::NotFound(d) | ApiError::Conflict(d) => {
                client("invalid_request", d)
            }
            ApiError::Malformed { detail, .. } | ApiError::Invalid { detail, .. } => {
                client("invalid_request", detail)
            }
            ApiError::PayloadTooLarge | ApiError::MethodNotAllowed => {
                let d = e.to_string();
                client("invalid_request", d)
            }
            ApiError::Unauthenticated(why) => client("invalid_client", why),
            ApiError::Forbidden(d) => client("insufficient_scope", d),
            ApiError::TooManyRequests { retry_after } => {
                Self::throttled(crate::throttle::Throttled { retry_after })
            }
            ApiError::Unavailable(internal) => {
                crate::error::logged(&internal);
                Self::new(status, "temporarily_unavailable", "try again later")
            }
            ApiError::Internal(internal) => {
                let id = crate::error::logged(&internal);
                Self::new(
                    status,
                    "server_error",
                    format!("internal error (request id {id})"),
                )
            }
        }
    }
}

impl From<crate::service::ServiceError> for OAuthError {
    fn from(e: crate::service::ServiceError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<bridle_store::StoreError> for OAuthError {
    fn from(e: bridle_store::StoreError) -> Self {
        crate::error::ApiError::from(e).into()
    }
}

/// The form of the OAuth endpoints (`application/x-www-form-urlencoded`).
/// Each endpoint reads the fields it needs and ignores the others.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct OAuthForm {
    /// Token endpoint: `client_credentials`, `authorization_code` or
    /// `urn:ietf:params:oauth:grant-type:token-exchange`.
    #[schema(example = "client_credentials")]
    pub grant_type: Option<String>,
    /// `client_secret_post`, or (optional) with `private_key_jwt`; with
    /// `authorization_code`, the client metadata document URL the code was
    /// issued to.
    pub client_id: Option<String>,
    /// `client_secret_post`; not together with Basic authentication.
    pub client_secret: Option<String>,
    /// `private_key_jwt`: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    pub client_assertion_type: Option<String>,
    /// `private_key_jwt`: a JWT signed with the client's registered key
    /// (`iss` = `sub` = client id, `aud` = this server's issuer or endpoint).
    pub client_assertion: Option<String>,
    /// Space-separated tool names (or globs) to narrow the token to.
    pub scope: Option<String>,
    /// The resource server the token is for (RFC 8707), an absolute URI; it
    /// becomes `aud`.
    pub resource: Option<String>,
    /// `authorization_code`: the code the authorization endpoint returned.
    pub code: Option<String>,
    /// `authorization_code`: exactly the `redirect_uri` of the
    /// authorization request.
    pub redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (RFC 7636) whose S256
    /// challenge the authorization request carried.
    pub code_verifier: Option<String>,
    /// Token exchange: the delegator's access token.
    pub subject_token: Option<String>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:access_token`.
    pub subject_token_type: Option<String>,
    /// Token exchange, optional: the delegate's own access token.
    pub actor_token: Option<String>,
    /// Token exchange: the type of `actor_token`.
    pub actor_token_type: Option<String>,
    /// Token exchange, optional: only `urn:ietf:params:oauth:token-type:access_token`.
    pub requested_token_type: Option<String>,
    /// Introspection and revocation: the token in question.
    pub token: Option<String>,
    /// Introspection and revocation: `access_token` (a hint only).
    pub token_type_hint: Option<String>,
    /// Introspection only (ignored elsewhere), by a `pep`, for a DPoP-bound
    /// token: the `DPoP` proof the agent sent with it. Checked and used up (a replay is refused);
    /// the `pep` may then forward it as `agent_dpop` while it handles that
    /// request.
    pub dpop_proof: Option<String>,
    /// Introspection, with `dpop_proof`: the HTTP method of the agent's request.
    #[schema(example = "POST")]
    pub dpop_htm: Option<String>,
    /// Introspection, with `dpop_proof`: the URL of the agent's request.
    #[schema(example = "http://127.0.0.1:8090/mcp")]
    pub dpop_htu: Option<String>,
}

/// A successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT access token (RFC 9068, `typ: at+jwt`).
    pub(crate) access_token: String,
    /// `Bearer`, or `DPoP` when the token is bound to a key (RFC 9449).
    #[schema(example = "Bearer")]
    pub(crate) token_type: &'static str,
    /// Seconds until the token expires.
    pub(crate) expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    /// Token exchange only: `urn:ietf:params:oauth:token-type:access_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) issued_token_type: Option<&'static str>,
}

pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// `WWW-Authenticate` for a request that needs a (valid) DPoP proof.
pub const DPOP_CHALLENGE: &str =
    "DPoP error=\"invalid_dpop_proof\", algs=\"EdDSA ES256 ES384 RS256 PS256\"";

/// Read an OAuth form; a body that is not one gets an OAuth error too, not
/// plain text.
pub(crate) fn read_form(
    form: Result<axum::Form<OAuthForm>, axum::extract::rejection::FormRejection>,
) -> Result<OAuthForm, OAuthError> {
    match form {
        Ok(axum::Form(form)) => Ok(form),
        Err(e) => {
            let status = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            Err(OAuthError::new(
                status,
                "invalid_request",
                "expected an `application/x-www-form-urlencoded` body",
            ))
        }
    }
}

/// A JSON response with `Cache-Control: no-store` (RFC 6749 §5.1).
pub(crate) fn no_store(body: impl Serialize) -> Response {
    let mut r = (StatusCode::OK, Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The public keys that verify access tokens (RFC 7517).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "oauth",
    operation_id = "jwks",
    security(()),
    responses(
        (status = 200, description = "A JWK Set (RFC 7517)", body = crate::tokens::JwkSet),
    ),
)]
pub async fn jwks(State(state): State<AppState>) -> Json<crate::tokens::JwkSet> {
    Json(state.keys().jwks().clone())
}

/// Authorization server metadata (RFC 8414).
// Fields in alphabetical order: the order this document has always had.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationServerMetadata {
    /// Always `["EdDSA"]`.
    access_token_signing_alg_values_supported: &'static [&'static str],
    /// The authorization code grant's endpoint (interactive clients).
    authorization_endpoint: String,
    /// Always `true` (RFC 9207): every redirect back carries `iss`.
    authorization_response_iss_parameter_supported: bool,
    /// Always `true`: a client is identified by the https URL of its
    /// metadata document.
    client_id_metadata_document_supported: bool,
    /// Always `["S256"]` (RFC 7636).
    code_challenge_methods_supported: &'static [&'static str],
    dpop_signing_alg_values_supported: &'static [&'static str],
    grant_types_supported: [&'static str; 3],
    introspection_endpoint: String,
    /// The client authentication methods, and `bearer` (a principal's API key).
    introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    introspection_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
    #[schema(example = "https://bridle.example.com")]
    issuer: String,
    jwks_uri: String,
    /// Always `true` (RFC 8707).
    resource_parameter_supported: bool,
    /// Always `["code"]`.
    response_types_supported: [&'static str; 1],
    revocation_endpoint: String,
    revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    revocation_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
    scopes_supported: [&'static str; 0],
    token_endpoint: String,
    /// The client authentication methods, and `none` (a public client
    /// with the authorization code grant).
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    token_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
}

/// Authorization server metadata (RFC 8414).
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = "oauth",
    operation_id = "oauth_metadata",
    security(()),
    responses(
        (status = 200, description = "RFC 8414 metadata: `issuer`, every endpoint, supported grant types, client authentication methods and signing algorithms, DPoP algorithms", body = AuthorizationServerMetadata),
    ),
)]
pub async fn metadata(State(state): State<AppState>) -> Json<AuthorizationServerMetadata> {
    let iss = state.config.issuer();
    let methods = client::METHODS;
    let algs = crate::jose::CLIENT_ALGS;
    // Principals may also present their API key as a bearer token.
    let with_bearer = [methods, &["bearer"]].concat();
    Json(AuthorizationServerMetadata {
        access_token_signing_alg_values_supported: &["EdDSA"],
        authorization_endpoint: format!("{iss}/oauth/authorize"),
        authorization_response_iss_parameter_supported: true,
        client_id_metadata_document_supported: true,
        code_challenge_methods_supported: &["S256"],
        dpop_signing_alg_values_supported: algs,
        grant_types_supported: ["client_credentials", TOKEN_EXCHANGE, "authorization_code"],
        introspection_endpoint: format!("{iss}/oauth/introspect"),
        introspection_endpoint_auth_methods_supported: with_bearer.clone(),
        introspection_endpoint_auth_signing_alg_values_supported: algs,
        jwks_uri: format!("{iss}/.well-known/jwks.json"),
        resource_parameter_supported: true,
        response_types_supported: ["code"],
        revocation_endpoint: format!("{iss}/oauth/revoke"),
        revocation_endpoint_auth_methods_supported: with_bearer,
        revocation_endpoint_auth_signing_alg_values_supported: algs,
        scopes_supported: [],
        token_endpoint: format!("{iss}/oauth/token"),
        token_endpoint_auth_methods_supported: [methods, &["none"]].concat(),
        token_endpoint_auth_signing_alg_values_supported: algs,
        issuer: iss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth(e: ApiError) -> (StatusCode, &'static str, String) {
        let o = OAuthError::from(e);
        (o.status, o.error, o.description)
    }

    #[test]
    fn client_errors_keep_their_status_in_oauth_format() {
        let field = || crate::error::FieldError {
            path: "resource".into(),
            message: "not a URI".into(),
            line: None,
            column: None,
        };
        let cases = [
            (
                ApiError::BadRequest("bad `x`".into()),
                400,
                "invalid_request",
            ),
            (
                ApiError::Malformed {
                    detail: "malformed".into(),
                    errors: vec![field()],
                },
                400,
                "invalid_request",
            ),
            (
                ApiError::Invalid {
                    detail: "invalid".into(),
                    errors: vec![field()],
                },
                422,
                "invalid_request",
            ),
            (
                ApiError::Unauthenticated("no key".into()),
                401,
                "invalid_client",
            ),
            (
                ApiError::Forbidden("requires `admin`".into()),
                403,
                "insufficient_scope",
            ),
            (
                ApiError::NotFound("`a` not found".into()),
                404,
                "invalid_request",
            ),
            (
                ApiError::Conflict("`a` already exists".into()),
                409,
                "invalid_request",
            ),
            (ApiError::PayloadTooLarge, 413, "invalid_request"),
            (ApiError::MethodNotAllowed, 405, "invalid_request"),
            (
                ApiError::TooManyRequests { retry_after: 7 },
                429,
                "temporarily_unavailable",
            ),
        ];
        for (e, status, code) in cases {
            let said = e.to_string();
            let detail = match &e {
                ApiError::Unauthenticated(why) => why.clone(),
                _ => said,
            };
            let (s, c, d) = oauth(e);
            assert_eq!((s.as_u16(), c), (status, code), "{detail}");
            if status != 429 {
                assert_eq!(d, detail);
            }
        }
    }

    #[test]
    fn only_unavailability_is_503_and_no_5xx_detail_reaches_the_client() {
        let (s, c, d) = oauth(ApiError::Unavailable("pool timed out at 10.0.0.7".into()));
        assert_eq!(
            (s, c),
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        );
        assert!(!d.contains("10.0.0.7"), "{d}");
        let (s, c, d) = oauth(ApiError::Internal("stored JWK: bad `kty`".into()));
        assert_eq!((s, c), (StatusCode::INTERNAL_SERVER_ERROR, "server_error"));
        assert!(d.starts_with("internal error (request id "), "{d}");
        assert!(!d.contains("kty"), "{d}");
    }
}
