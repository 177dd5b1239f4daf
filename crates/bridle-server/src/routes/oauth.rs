//! OAuth 2.0 for agents: the client-credentials grant (RFC 6749 §4.4) with
//! `client_secret_basic` and `client_secret_post`, RFC 8707 `resource`,
//! RFC 9068 JWT access tokens, JWKS (RFC 7517) and metadata (RFC 8414).
//! Errors use the OAuth error format, not problem+json, as clients expect.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine as _;
use bridle_core::audit::EventType;
use bridle_core::engine::AgentState;
use bridle_store::{CredentialStore, RegistryRead, ts};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::state::AppState;
use crate::tokens::{Claims, hash_secret, random_token};

pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }
}

/// An OAuth error response (RFC 6749 §5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody<'a> {
    /// `invalid_request`, `invalid_client`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_target` or
    /// `temporarily_unavailable`.
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
        r
    }
}

impl From<crate::error::ApiError> for OAuthError {
    fn from(e: crate::error::ApiError) -> Self {
        // Never leak detail; the store being down is a temporary condition.
        tracing::error!(error = %e, "token endpoint failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "try again later",
        )
    }
}

impl From<bridle_store::StoreError> for OAuthError {
    fn from(e: bridle_store::StoreError) -> Self {
        crate::error::ApiError::from(e).into()
    }
}

/// The form of `POST /oauth/token`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// `client_credentials`.
    #[schema(example = "client_credentials")]
    grant_type: Option<String>,
    /// For `client_secret_post`.
    client_id: Option<String>,
    /// For `client_secret_post`; not together with Basic authentication.
    client_secret: Option<String>,
    /// Space-separated tool names to narrow the token to.
    scope: Option<String>,
    /// The resource server the token is for (RFC 8707), an absolute URI; it
    /// becomes `aud`.
    resource: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT access token (RFC 9068, `typ: at+jwt`).
    access_token: String,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the token expires.
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `client_secret_basic` (credentials form-urlencoded inside Basic, RFC 6749
/// §2.3.1) or `client_secret_post`; using both at once is an error.
fn client_credentials(
    headers: &HeaderMap,
    form: &TokenRequest,
) -> Result<(String, String), OAuthError> {
    let invalid = |d: &str| OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", d);
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    match (basic, &form.client_secret) {
        (Some(_), Some(_)) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "use one client authentication method, not two",
        )),
        (Some(b64), None) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| invalid("malformed Basic credentials"))?;
            let raw = String::from_utf8(raw).map_err(|_| invalid("malformed Basic credentials"))?;
            let (id, secret) = raw
                .split_once(':')
                .ok_or_else(|| invalid("malformed Basic credentials"))?;
            let id = percent_decode(id).ok_or_else(|| invalid("malformed client id"))?;
            let secret =
                percent_decode(secret).ok_or_else(|| invalid("malformed client secret"))?;
            Ok((id, secret))
        }
        (None, Some(secret)) => {
            let id = form
                .client_id
                .clone()
                .ok_or_else(|| invalid("client_id is missing"))?;
            Ok((id, secret.clone()))
        }
        (None, None) => Err(invalid("client authentication is required")),
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Issue an access token to an agent (client credentials grant).
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "oauth",
    operation_id = "token",
    security(("client_secret_basic" = []), ()),
    request_body(
        content = TokenRequest,
        content_type = "application/x-www-form-urlencoded",
        description = "Client authentication is `client_secret_basic` (the Authorization header) or `client_secret_post` (`client_id` and `client_secret` in the form), not both",
    ),
    responses(
        (status = 200, description = "The access token", body = TokenResponse,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "`invalid_request`, `unsupported_grant_type`, `unauthorized_client` (the agent is suspended, retired or expired), `invalid_scope` or `invalid_target`", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client`: unknown client or wrong secret", body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"bridle\"`"))),
        (status = 413, description = "`invalid_request`: the body is larger than the configured limit", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`: the store cannot be used", body = OAuthErrorBody),
    ),
)]
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    // A body that is not a form gets an OAuth error too, not plain text.
    let form = match form {
        Ok(Form(form)) => form,
        Err(e) => {
            let status = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return OAuthError::new(
                status,
                "invalid_request",
                "expected an `application/x-www-form-urlencoded` body",
            )
            .into_response();
        }
    };
    match issue(&state, &headers, &form).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn issue(
    state: &AppState,
    headers: &HeaderMap,
    form: &TokenRequest,
) -> Result<Response, OAuthError> {
    let (client_id, secret) = client_credentials(headers, form)?;
    let bad_client = || {
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret",
        )
    };
    let (agent_id, secret_hash, revoked) = state
        .store
        .credential(&client_id)
        .await?
        .ok_or_else(bad_client)?;
    if !constant_time_eq(&hash_secret(&secret), &secret_hash) {
        return Err(bad_client());
    }
    if revoked {
        // A retired agent's credentials were revoked with it: say so, as the
        // contract asks; any other revoked credential is simply invalid.
        let retired = match agent_id.parse() {
            Ok(id) => state
                .store
                .agent(&id)
                .await?
                .is_some_and(|r| r.state == AgentState::Retired),
            Err(_) => false,
        };
        if retired {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                format!("agent `{agent_id}` is retired"),
            ));
        }
        return Err(bad_client());
    }
    match form.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("`{other}` is not supported here"),
            ));
        }
        None => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is missing",
            ));
        }
    }
    let id = agent_id.parse().map_err(|_| bad_client())?;
    let row = state.store.agent(&id).await?.ok_or_else(bad_client)?;
    if row.state != AgentState::Active {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            format!("agent `{}` is {}", row.id, row.state.as_str()),
        ));
    }
    let compiled = state.compiled(&row)?;
    let manifest = compiled.manifest();
    let now = Timestamp::now();
    if now.to_zoned_datetime(jiff::tz::TimeZone::UTC).date() > manifest.expires {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "the agent has expired",
        ));
    }
    let aud = match &form.resource {
        Some(r) if r.contains("://") && !r.contains('#') => r.clone(),
        Some(_) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                "resource must be an absolute URI",
            ));
        }
        None => state.config.audience(),
    };
    let scope = match form
        .scope
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(s) => {
            if let Some(bad) = s
                .split(' ')
                .find(|t| bridle_core::glob::Glob::tool(t).is_err())
            {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!("`{bad}` is not a tool name"),
                ));
            }
            Some(s.to_owned())
        }
        None => None,
    };
    let ttl = manifest.credentials.token_ttl;
    let exp = now + ttl;
    let claims = Claims {
        iss: state.config.issuer(),
        sub: row.id.to_string(),
        aud,
        client_id: client_id.clone(),
        iat: now.as_second(),
        exp: exp.as_second(),
        jti: random_token(16),
        scope: scope.clone(),
        act: None,
    };
    let jwt = state
        .keys
        .mint(&claims)
        .map_err(|e| crate::error::ApiError::Internal(e.to_string()))?;
    state
        .store
        .record_token(&claims.jti, row.id.as_str(), &client_id, &ts(exp))
        .await?;
    let mut event = state.event(EventType::Token, &format!("agent:{}", row.id));
    event.agent = Some(row.id.to_string());
    event.detail = Some(serde_json::json!({
        "op": "issue", "grant_type": "client_credentials", "client_id": client_id, "jti": claims.jti,
        "aud": claims.aud, "exp": claims.exp, "scope": scope,
    }));
    state.audit(event).await?;
    let body = TokenResponse {
        access_token: jwt,
        token_type: "Bearer",
        expires_in: ttl.as_secs(),
        scope,
    };
    let mut r = (StatusCode::OK, Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// The public keys that verify access tokens (RFC 7517).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "oauth",
    operation_id = "jwks",
    security(()),
    responses(
        (status = 200, description = "A JWK Set: `{keys: [JWK…]}`", body = Object),
    ),
)]
pub async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.keys.jwks().clone())
}

/// Authorization server metadata (RFC 8414).
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = "oauth",
    operation_id = "oauth_metadata",
    security(()),
    responses(
        (status = 200, description = "RFC 8414 metadata: `issuer`, `token_endpoint`, `jwks_uri`, supported grant types and authentication methods", body = Object),
    ),
)]
pub async fn metadata(State(state): State<AppState>) -> Json<serde_json::Value> {
    let iss = state.config.issuer();
    Json(serde_json::json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}/oauth/token"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
        "scopes_supported": [],
        "resource_parameter_supported": true,
        "access_token_signing_alg_values_supported": ["EdDSA"],
    }))
}
