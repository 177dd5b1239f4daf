//! `/ext_authz/…`: Envoy's external authorization (HTTP service). Envoy
//! sends each original request here with the same method, its path after
//! `/ext_authz`, its headers and (with `with_request_body`) its body. A
//! route table in the server configuration turns method + path into an
//! action and resource; the agent's bearer token and the JSON body (as the
//! arguments) are decided like any `POST /v1/decisions`.
//!
//! 200 allows. A denial is 403 with the reason code in `x-bridle-reason`
//! and the decision as the body; no or a bad token is 401; a request no
//! route names, or any error, is refused (fail closed).
//!
//! ```toml
//! [ext_authz]
//! audience = "http://shop.internal"      # the tokens' `aud`, if not the server's
//! [[ext_authz.routes]]
//! method = "POST"
//! path = "/api/purchase-requests"
//! action = "procurement.create_purchase_request"
//! [[ext_authz.routes]]
//! method = "GET"
//! path = "/api/vendors/{vendor}"          # `{name}` takes one segment, into the args
//! action = "procurement.read_vendor"
//! resource = "vendor:{vendor}"
//! ```

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::{Caller, Presentation, Scheme, authorization, verify_agent_token};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtAuthzConfig {
    /// The audience of the protected service's tokens, when it is not the
    /// server's own.
    pub audience: Option<String>,
    pub routes: Vec<ExtAuthzRoute>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtAuthzRoute {
    /// An HTTP method, or `*` for any.
    pub method: String,
    /// `/`-separated; `{name}` matches one segment (and becomes an
    /// argument), `*` matches one segment, a final `**` the rest.
    pub path: String,
    pub action: String,
    /// May use the `{name}` captures of `path`.
    pub resource: Option<String>,
}

impl ExtAuthzRoute {
    /// The path captures when this route matches.
    fn matches(&self, method: &Method, path: &str) -> Option<Map<String, Value>> {
        if self.method != "*" && !self.method.eq_ignore_ascii_case(method.as_str()) {
            return None;
        }
        let mut want = self.path.trim_matches('/').split('/');
        let mut have = path.trim_matches('/').split('/');
        let mut captures = Map::new();
        loop {
            match (want.next(), have.next()) {
                (None, None) => return Some(captures),
                (Some("**"), Some(_)) => return Some(captures),
                (Some(w), Some(h)) => {
                    if let Some(name) = w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                        captures.insert(name.to_owned(), Value::String(h.to_owned()));
                    } else if w != "*" && w != h {
                        return None;
                    }
                }
                _ => return None,
            }
        }
    }
}

fn fill(template: &str, captures: &Map<String, Value>) -> String {
    captures
        .iter()
        .fold(template.to_owned(), |text, (name, value)| {
            text.replace(&format!("{{{name}}}"), value.as_str().unwrap_or_default())
        })
}

fn refuse(status: StatusCode, reason: &str, body: Value) -> Response {
    let mut res = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(reason) {
        res.headers_mut().insert("x-bridle-reason", v);
    }
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

/// Any method on `/ext_authz/{*path}` (not in the OpenAPI document: it
/// mirrors the protected service's own requests).
pub async fn check(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match decide(&state, &method, &uri, &headers, &body).await {
        Ok(res) => res,
        Err(ApiError::Unauthenticated(why)) => refuse(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            json!({"decision": "deny", "reasons": [{"code": "unauthenticated", "message": why}]}),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "ext_authz refused on an error");
            refuse(
                StatusCode::FORBIDDEN,
                "error",
                json!({"decision": "deny", "reasons": [{"code": "error", "message": "no decision could be made"}]}),
            )
        }
    }
}

async fn decide(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let path = uri.path().strip_prefix("/ext_authz").unwrap_or(uri.path());
    let (scheme, token) = authorization(headers)?;
    if scheme != Scheme::Bearer {
        return Err(ApiError::Unauthenticated(
            "expected `Authorization: Bearer …`".into(),
        ));
    }
    let config = &state.config.ext_authz;
    let how = Presentation {
        audience: config.audience.as_deref(),
        scheme: Some(scheme),
        dpop: None,
    };
    let agent = verify_agent_token(state, token, how).await?;
    let Some((route, captures)) = config
        .routes
        .iter()
        .find_map(|r| r.matches(method, path).map(|c| (r, c)))
    else {
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "no_route",
            json!({"decision": "deny", "reasons": [{"code": "no_route",
                "message": format!("no ext_authz route for `{method} {path}`")}]}),
        ));
    };
    let mut args = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (k, v) in &captures {
        args.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let mut request = json!({"action": route.action, "args": args});
    if let (Some(r), Some(obj)) = (&route.resource, request.as_object_mut()) {
        obj.insert("resource".into(), Value::String(fill(r, &captures)));
    }
    let request = serde_json::from_value(request)
        .map_err(|e| ApiError::Internal(format!("ext_authz request: {e}")))?;
    let caller = Caller::Agent(Box::new(agent));
    let Json(answer) =
        super::decisions::decide(State(state.clone()), caller, Ok(Json(request))).await?;
    let answer = serde_json::to_value(&answer)
        .map_err(|e| ApiError::Internal(format!("ext_authz answer: {e}")))?;
    let decision = answer["decision"].as_str().unwrap_or("deny");
    if decision == "allow" {
        let mut res = StatusCode::OK.into_response();
        if let Some(id) = answer["decision_id"].as_str()
            && let Ok(v) = HeaderValue::from_str(id)
        {
            res.headers_mut().insert("x-bridle-decision-id", v);
        }
        return Ok(res);
    }
    let reason = answer["reasons"][0]["code"]
        .as_str()
        .unwrap_or(decision)
        .to_owned();
    let mut res = refuse(StatusCode::FORBIDDEN, &reason, answer.clone());
    if let Some(id) = answer["approval_id"].as_str()
        && let Ok(v) = HeaderValue::from_str(id)
    {
        res.headers_mut().insert("x-bridle-approval-id", v);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> ExtAuthzRoute {
        ExtAuthzRoute {
            method: method.into(),
            path: path.into(),
            action: "a.b".into(),
            resource: Some("vendor:{vendor}".into()),
        }
    }

    #[test]
    fn paths_match_by_segment_with_captures() {
        let r = route("GET", "/api/vendors/{vendor}");
        let c = r.matches(&Method::GET, "/api/vendors/acme").unwrap();
        assert_eq!(c["vendor"], "acme");
        assert_eq!(fill(r.resource.as_deref().unwrap(), &c), "vendor:acme");
        assert!(r.matches(&Method::POST, "/api/vendors/acme").is_none());
        assert!(r.matches(&Method::GET, "/api/vendors").is_none());
        assert!(r.matches(&Method::GET, "/api/vendors/acme/x").is_none());
        let any = route("*", "/static/**");
        assert!(any.matches(&Method::DELETE, "/static/a/b/c").is_some());
        assert!(any.matches(&Method::GET, "/other").is_none());
    }
}
