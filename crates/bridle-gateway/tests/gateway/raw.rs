//! MCP over plain HTTP, as clients send it: 2026-07-28's stateless
//! requests with their headers, and a 2025-11-25 session opened by hand.

use serde_json::{Value, json};

use super::harness::Env;

/// One JSON-RPC request on 2026-07-28 (stateless, no handshake), as a
/// current client sends it: the request headers name the method and target.
pub(crate) fn modern(
    env: &Env,
    token: &str,
    id: u64,
    method: &str,
    params: Value,
) -> reqwest::RequestBuilder {
    modern_as(env, &format!("Bearer {token}"), id, method, params)
}

/// [`modern`] with the whole `Authorization` header value.
pub(crate) fn modern_as(
    env: &Env,
    authorization: &str,
    id: u64,
    method: &str,
    params: Value,
) -> reqwest::RequestBuilder {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let mut req = env
        .http
        .post(&env.mcp)
        .header("authorization", authorization)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = params["name"].as_str().or(params["uri"].as_str()) {
        req = req.header("mcp-name", name);
    }
    req.json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
}

/// A 2025-11-25 session opened by hand (initialize, then initialized): its
/// `Mcp-Session-Id`.
pub(crate) async fn legacy_session(env: &Env, token: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let r = env
        .http
        .post(&env.mcp)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let v = response(r).await;
    assert_eq!(v["result"]["protocolVersion"], "2025-11-25", "{v}");
    let r = legacy(
        env,
        token,
        &session,
        0,
        "notifications/initialized",
        json!({}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    session
}

/// A request (or, as `notifications/…`, a notification) in a 2025-11-25
/// session.
pub(crate) fn legacy(
    env: &Env,
    token: &str,
    session: &str,
    id: u64,
    method: &str,
    params: Value,
) -> reqwest::RequestBuilder {
    let mut message = json!({"jsonrpc": "2.0", "method": method, "params": params});
    if !method.starts_with("notifications/") {
        message["id"] = json!(id);
    }
    env.http
        .post(&env.mcp)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", session)
        .json(&message)
}

/// The JSON-RPC response in a JSON or SSE answer.
pub(crate) async fn response(r: reqwest::Response) -> Value {
    let text = r.text().await.unwrap();
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return v;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| m.get("id").is_some())
        .unwrap_or_else(|| panic!("no response in {text}"))
}

/// The gateway's RFC 9728 protected-resource metadata.
pub(crate) async fn resource_metadata(env: &Env) -> Value {
    let gw = env.mcp.trim_end_matches("/mcp");
    env.http
        .get(format!("{gw}/.well-known/oauth-protected-resource"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
