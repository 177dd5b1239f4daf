//! The HTTP side: an OAuth 2.0 resource server per the MCP authorization
//! specification (2025-11-25). `/mcp` takes Bridle access tokens only, for
//! this gateway's audience; anything else is 401 with a `WWW-Authenticate`
//! challenge pointing at the RFC 9728 protected-resource metadata.
//!
//! Tokens are checked by introspection (RFC 7662) on every HTTP request
//! rather than by a local JWKS check: the server then sees revocation,
//! suspension and retirement the moment they happen, and a verified-token
//! cache keeps it cheap. Decisions check the token again, with the same
//! audience. The token is never sent upstream.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio::sync::OnceCell;

use crate::bridle::{AgentToken, Bridle, BridleError};
use crate::proxy::{Proxy, Shared};

#[derive(Debug)]
struct Auth {
    bridle: Bridle,
    /// The gateway's `/mcp` URL (the resource, and the first audience).
    resource: String,
    audiences: Vec<String>,
    metadata_url: String,
    issuer: OnceCell<String>,
}

/// `http://host:port/mcp` → `http://host:port`.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url.get(after_scheme..).and_then(|rest| rest.find('/')) {
        Some(i) => url.get(..after_scheme + i).unwrap_or(url),
        None => url,
    }
}

fn host_of(url: &str) -> Option<String> {
    let authority = origin(url).split("://").nth(1)?;
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    Some(host.trim_matches(['[', ']']).to_owned())
}

pub fn router(shared: Arc<Shared>, resource: String, accept: Vec<String>) -> Router {
    let metadata_url = format!("{}/.well-known/oauth-protected-resource", origin(&resource));
    let mut audiences = vec![resource.clone()];
    audiences.extend(accept);
    let auth = Arc::new(Auth {
        bridle: shared.bridle.clone(),
        resource: resource.clone(),
        audiences,
        metadata_url,
        issuer: OnceCell::new(),
    });
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    hosts.extend(host_of(&resource));
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
    let proxy = Proxy(shared);
    let service = StreamableHttpService::new(
        move || Ok(proxy.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let mcp =
        Router::new()
            .route_service("/mcp", service)
            .layer(axum::middleware::from_fn_with_state(
                auth.clone(),
                authenticate,
            ));
    Router::new()
        .route("/.well-known/oauth-protected-resource", get(metadata))
        .route("/.well-known/oauth-protected-resource/mcp", get(metadata))
        .with_state(auth)
        .merge(mcp)
}

/// RFC 9728 protected-resource metadata.
async fn metadata(State(auth): State<Arc<Auth>>) -> Response {
    let issuer = auth.issuer.get_or_try_init(|| auth.bridle.issuer()).await;
    match issuer {
        Ok(issuer) => Json(json!({
            "resource": auth.resource,
            "authorization_servers": [issuer],
            "bearer_methods_supported": ["header"],
            "resource_name": "Bridle MCP gateway",
        }))
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "no issuer for the protected-resource metadata");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the authorization server is unavailable",
            )
                .into_response()
        }
    }
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn challenge(auth: &Auth, error: Option<&str>) -> Response {
    let mut value = format!("Bearer resource_metadata=\"{}\"", auth.metadata_url);
    if let Some(e) = error {
        value.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{e}\""
        ));
    }
    let mut res = (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "invalid_token", "error_description": error.unwrap_or("a Bridle access token is required")})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

async fn authenticate(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(&req).map(str::to_owned) else {
        return challenge(&auth, None);
    };
    match auth.bridle.introspect(&token).await {
        Ok(i) if i.active => {
            let aud = i.aud.unwrap_or_default();
            if !auth.audiences.contains(&aud) {
                return challenge(&auth, Some("the token was issued for another audience"));
            }
            req.extensions_mut().insert(AgentToken {
                token,
                audience: aud,
                agent: i.sub.unwrap_or_default(),
            });
            next.run(req).await
        }
        Ok(_) | Err(BridleError::Unauthenticated(_)) => {
            challenge(&auth, Some("the token is not active"))
        }
        Err(e) => {
            // Fail closed: no decision point, no access.
            tracing::warn!(error = %e, "token introspection failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the authorization server is unavailable",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_and_host() {
        assert_eq!(origin("http://127.0.0.1:8090/mcp"), "http://127.0.0.1:8090");
        assert_eq!(origin("https://gw.example"), "https://gw.example");
        assert_eq!(
            host_of("http://127.0.0.1:8090/mcp").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(host_of("https://[::1]:9/mcp").as_deref(), Some("::1"));
    }
}
