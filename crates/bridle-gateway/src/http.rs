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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use crate::bridle::{AgentDpop, AgentToken, Bridle, BridleError, ServerMetadata};
use crate::proxy::{Proxy, Shared};

/// How long a positive `reachable` answer lets calls of one token to one
/// action past the header check. Only the decision lets a call through, so
/// a stale answer never admits anything; negative answers are not kept.
const REACHABLE_TTL: Duration = Duration::from_secs(30);
const REACHABLE_KEEP: usize = 4096;
/// The largest request body the header check reads to answer a refusal.
const BODY_LIMIT: usize = 4 << 20;

#[derive(Debug)]
struct Auth {
    shared: Arc<Shared>,
    bridle: Bridle,
    /// The gateway's `/mcp` URL (the resource, and the first audience).
    resource: String,
    audiences: Vec<String>,
    metadata_url: String,
    server: OnceCell<ServerMetadata>,
    reachable: Mutex<HashMap<(String, String), Instant>>,
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
        shared: shared.clone(),
        bridle: shared.bridle.clone(),
        resource: resource.clone(),
        audiences,
        metadata_url,
        server: OnceCell::new(),
        reachable: Mutex::new(HashMap::new()),
    });
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    hosts.extend(host_of(&resource));
    // No priming event (an SSE `retry` with an event id) invites a client to
    // resume a request's stream after its connection drops: a held call whose
    // connection closed is given up (`held::Connection`), never run later.
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_sse_retry(None);
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.sse_retry = None;
    let service = StreamableHttpService::new(
        move || Ok(Proxy::new(shared.clone())),
        Arc::new(sessions),
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
        .route("/healthz", get(healthz))
        .with_state(auth)
        .merge(mcp)
}

/// RFC 9728 protected-resource metadata.
async fn metadata(State(auth): State<Arc<Auth>>) -> Response {
    let server = auth
        .server
        .get_or_try_init(|| auth.bridle.server_metadata())
        .await;
    match server {
        Ok(server) => {
            let mut meta = json!({
                "resource": auth.resource,
                "authorization_servers": [server.issuer],
                "bearer_methods_supported": ["header"],
                "resource_name": "Bridle MCP gateway",
            });
            let algs = &server.dpop_signing_alg_values_supported;
            if let (false, Some(m)) = (algs.is_empty(), meta.as_object_mut()) {
                m.insert("dpop_signing_alg_values_supported".into(), json!(algs));
            }
            Json(meta).into_response()
        }
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

/// Public: which upstreams are connected and whether the server answers;
/// 503 when any is not. No internal detail.
async fn healthz(State(auth): State<Arc<Auth>>) -> Response {
    let upstreams: Map<String, Value> = auth
        .shared
        .upstreams
        .all
        .iter()
        .map(|u| {
            let state = if u.connected() {
                "connected"
            } else {
                "disconnected"
            };
            (u.name.clone(), Value::from(state))
        })
        .collect();
    let server = auth.bridle.healthy().await;
    let ok = server && upstreams.values().all(|v| v == "connected");
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "bridle": if server { "reachable" } else { "unreachable" },
        "upstreams": upstreams,
    });
    (status, Json(body)).into_response()
}

/// The action a request names in its `Mcp-Method`/`Mcp-Name` headers
/// (2026-07-28), when it is a call the gateway decides by name.
fn header_action(shared: &Shared, req: &Request) -> Option<String> {
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    let method = header("mcp-method")?;
    let name = header("mcp-name")?;
    // Base64-wrapped names are never tool names; the handler decides them.
    if name.starts_with("=?") {
        return None;
    }
    match method {
        "tools/call" => Some(name.to_owned()),
        "prompts/get" => {
            let (u, prompt) = shared.upstreams.route(name)?;
            Some(format!("{}prompt.{prompt}", u.prefix))
        }
        _ => None,
    }
}

impl Auth {
    fn known_reachable(&self, agent: &AgentToken, action: &str) -> bool {
        let Ok(map) = self.reachable.lock() else {
            return false;
        };
        map.get(&(agent.token.clone(), action.to_owned()))
            .is_some_and(|at| at.elapsed() < REACHABLE_TTL)
    }

    fn remember_reachable(&self, agent: &AgentToken, action: &str) {
        if let Ok(mut map) = self.reachable.lock() {
            if map.len() >= REACHABLE_KEEP {
                map.retain(|_, at| at.elapsed() < REACHABLE_TTL);
                if map.len() >= REACHABLE_KEEP {
                    map.clear();
                }
            }
            map.insert((agent.token.clone(), action.to_owned()), Instant::now());
        }
    }

    /// Refuse a call its headers show the agent cannot reach, before its
    /// body enters the MCP session (let alone an upstream). The refusal is a
    /// decision like any other (audited, with its reason); a call that is
    /// reachable, or that the headers do not name, goes on to be decided
    /// by the handler.
    async fn gate(&self, agent: &AgentToken, req: Request) -> Result<Request, Response> {
        let Some(action) = header_action(&self.shared, &req) else {
            return Ok(req);
        };
        if self.known_reachable(agent, &action) {
            return Ok(req);
        }
        match self.bridle.reachable(agent, vec![action.clone()]).await {
            Ok(r) if r.contains(&action) => {
                self.remember_reachable(agent, &action);
                return Ok(req);
            }
            Ok(_) => {}
            // The handler's decision fails closed on the same error.
            Err(_) => return Ok(req),
        }
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            )
                .into_response());
        };
        let message: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let args = message
            .pointer("/params/arguments")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let rebuilt = || Request::from_parts(parts.clone(), axum::body::Body::from(bytes.clone()));
        let Some(id) = message.get("id").cloned() else {
            return Ok(rebuilt());
        };
        match self.bridle.decide(agent, &action, &args, None).await {
            Ok(d) if d.decision == "deny" => {
                let error = crate::proxy::denied(&d);
                let body = json!({"jsonrpc": "2.0", "id": id, "error": error});
                Err(Json(body).into_response())
            }
            // Reachable after all (the record changed meanwhile), or no
            // answer: the handler decides again.
            _ => Ok(rebuilt()),
        }
    }
}

/// The access token of a request and, with the `DPoP` scheme, the proof
/// (RFC 9449 §7.1: exactly one `DPoP` header).
fn presented(req: &Request, resource: &str) -> Result<(String, Option<AgentDpop>), Refusal> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(Refusal::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(Refusal::Missing)?;
    let token = token.trim();
    if token.is_empty() {
        return Err(Refusal::Missing);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok((token.to_owned(), None));
    }
    if !scheme.eq_ignore_ascii_case("dpop") {
        return Err(Refusal::Missing);
    }
    let mut proofs = req.headers().get_all("dpop").iter();
    let proof = match (proofs.next(), proofs.next()) {
        (Some(p), None) => p
            .to_str()
            .map_err(|_| Refusal::Dpop("a malformed `DPoP` header".into()))?,
        (None, _) => {
            return Err(Refusal::Dpop(
                "the `DPoP` scheme needs a `DPoP` proof header".into(),
            ));
        }
        (Some(_), Some(_)) => return Err(Refusal::Dpop("more than one `DPoP` header".into())),
    };
    let dpop = AgentDpop {
        proof: proof.to_owned(),
        htm: req.method().as_str().to_owned(),
        htu: resource.to_owned(),
    };
    Ok((token.to_owned(), Some(dpop)))
}

/// Why a request's credentials are refused.
enum Refusal {
    /// No access token (or an unknown scheme).
    Missing,
    /// The token is not one this gateway accepts.
    Token(&'static str),
    /// The DPoP proof is missing, malformed or refused.
    Dpop(String),
}

/// 401 with challenges for both schemes (RFC 6750 §3, RFC 9449 §7.1), each
/// pointing at the protected-resource metadata (RFC 9728).
fn challenge(auth: &Auth, refusal: &Refusal) -> Response {
    let (error, description) = match refusal {
        Refusal::Missing => (None, "a Bridle access token is required"),
        Refusal::Token(why) => (Some("invalid_token"), *why),
        Refusal::Dpop(why) => (Some("invalid_dpop_proof"), why.as_str()),
    };
    let meta = format!("resource_metadata=\"{}\"", auth.metadata_url);
    let mut bearer = format!("Bearer {meta}");
    let mut dpop = format!("DPoP {meta}");
    if let Some(algs) = auth
        .server
        .get()
        .map(|s| s.dpop_signing_alg_values_supported.join(" "))
        .filter(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || c == ' '))
    {
        dpop.push_str(&format!(", algs=\"{algs}\""));
    }
    if let Some(e) = error {
        // Quotes cannot end the parameter early; a header value is ASCII.
        let text: String = description
            .replace('…', "...")
            .chars()
            .map(|c| match c {
                '"' | '\\' => '\'',
                c if c.is_ascii() && !c.is_ascii_control() => c,
                _ => '?',
            })
            .collect();
        let params = format!(", error=\"{e}\", error_description=\"{text}\"");
        match refusal {
            Refusal::Dpop(_) => dpop.push_str(&params),
            _ => bearer.push_str(&params),
        }
    }
    let body = json!({"error": error.unwrap_or("invalid_token"), "error_description": description});
    let mut res = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    for value in [bearer, dpop] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().append(header::WWW_AUTHENTICATE, v);
        }
    }
    res
}

/// [`challenge`], with the server's DPoP algorithms fetched first for a
/// refused proof (its challenge names them).
async fn refuse(auth: &Auth, refusal: &Refusal) -> Response {
    if matches!(refusal, Refusal::Dpop(_)) {
        // Without them the challenge is still right, only less helpful.
        let _ = auth
            .server
            .get_or_try_init(|| auth.bridle.server_metadata())
            .await;
    }
    challenge(auth, refusal)
}

async fn authenticate(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let (token, dpop) = match presented(&req, &auth.resource) {
        Ok(p) => p,
        Err(refusal) => return refuse(&auth, &refusal).await,
    };
    match auth.bridle.introspect(&token, dpop.as_ref()).await {
        Ok(i) if i.active => {
            let aud = i.aud.unwrap_or_default();
            if !auth.audiences.contains(&aud) {
                return challenge(
                    &auth,
                    &Refusal::Token("the token was issued for another audience"),
                );
            }
            let bound = i.token_type.as_deref() == Some("DPoP");
            if bound && dpop.is_none() {
                return challenge(
                    &auth,
                    &Refusal::Token(
                        "the token is DPoP-bound: send it as `Authorization: DPoP …` with a `DPoP` proof",
                    ),
                );
            }
            let agent = AgentToken {
                token,
                audience: aud,
                agent: i.sub.unwrap_or_default(),
                dpop,
            };
            req.extensions_mut().insert(agent.clone());
            let (connection, watched) = crate::held::Watched::pair();
            req.extensions_mut().insert(connection);
            match auth.gate(&agent, req).await {
                Ok(req) => next
                    .run(req)
                    .await
                    .map(|body| axum::body::Body::new(watched(body))),
                Err(refused) => refused,
            }
        }
        Ok(_) | Err(BridleError::Unauthenticated(_)) => {
            challenge(&auth, &Refusal::Token("the token is not active"))
        }
        Err(BridleError::InvalidDpop(why)) => refuse(&auth, &Refusal::Dpop(why)).await,
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
