//! `/ext_authz/…`: Envoy's external authorization (HTTP service) check.
//! Envoy sends the agent's request here — the same method, the original path
//! under `/ext_authz`, the `Authorization` (and `DPoP`) headers and, with
//! `with_request_body`, the body — and lets the request through only on 200.
//! The route table ([`crate::ext_authz`]) names the action; the decision is
//! the same as `POST /v1/decisions` (audited before the answer). Anything
//! else — no route, a denial, a pending approval, a bad token, a store
//! failure — is not 200, so Envoy refuses: fail closed.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bridle_core::audit::EventType;
use serde::Serialize;
use utoipa::ToSchema;

use super::decisions::{DecisionResponse, decide_as};
use crate::auth::{
    DpopEvidence, Presentation, Scheme, authorization, dpop_header, looks_like_jwt,
    verify_agent_token,
};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::AppState;

/// Why a request was refused (403).
#[derive(Debug, Serialize, ToSchema)]
pub struct ExtAuthzDenial {
    /// `deny` or `approval_required`.
    #[schema(example = "deny")]
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision_id: Option<String>,
    #[schema(value_type = Vec<doc::ReasonSchema>)]
    reasons: Vec<bridle_core::decision::Reason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    approval_id: Option<String>,
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Arguments: query parameters, then the JSON body's fields, then the
/// captured path segments (later ones win).
fn arguments(
    uri: &Uri,
    body: &Bytes,
    params: &std::collections::BTreeMap<String, String>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut args = serde_json::Map::new();
    if let Ok(axum::extract::Query(pairs)) =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
    {
        for (k, v) in pairs {
            args.insert(k, v.into());
        }
    }
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) {
        args.extend(fields);
    }
    for (k, v) in params {
        args.insert(k.clone(), v.clone().into());
    }
    args
}

/// Envoy ext_authz check (HTTP service): 200 lets the request through; 403
/// carries the reason code in `x-bridle-reason` and in the body; 401 for a
/// missing or invalid agent token.
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/ext_authz/{path}",
    tag = "decisions",
    operation_id = "ext_authz",
    params(
        ("path" = String, Path, description = "The original request's path"),
        ("DPoP" = Option<String>, Header, description = "The agent's DPoP proof, for a DPoP-bound token"),
    ),
    request_body(content = Option<Object>, description = "The original request's body, when Envoy sends it (`with_request_body`); a JSON object's fields become arguments"),
    responses(
        (status = 200, description = "Allowed",
            headers(
                ("x-bridle-decision" = String, description = "`allow`"),
                ("x-bridle-decision-id" = String, description = "The audited decision"),
            )),
        (status = 401, response = doc::Unauthorized),
        (status = 403, description = "Refused: denied, waiting for approval, or no route maps the request to an action", body = ExtAuthzDenial,
            headers(
                ("x-bridle-decision" = String, description = "`deny` or `approval_required`"),
                ("x-bridle-reason" = String, description = "The first reason code"),
            )),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn check(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match run(&state, &method, &uri, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let path = match uri.path().strip_prefix("/ext_authz") {
        Some("") | None => "/",
        Some(p) => p,
    };
    let (scheme, token) = authorization(headers)?;
    if !looks_like_jwt(token) {
        return Err(ApiError::Unauthenticated(
            "ext_authz needs the agent's access token".into(),
        ));
    }
    let config = &state.config.ext_authz;
    // Which configured audience full verification must then find in `aud`.
    let audience =
        crate::jose::unverified_claim(token, "aud").filter(|a| config.audiences.contains(a));
    let url = config
        .public_url
        .as_deref()
        .map(|base| format!("{}{path}", base.trim_end_matches('/')));
    let proof = dpop_header(headers)?;
    let how = Presentation {
        audience: audience.as_deref(),
        scheme: Some(scheme),
        dpop: match (proof, &url) {
            (Some(proof), Some(url)) => Some(DpopEvidence {
                proof,
                method: method.as_str(),
                url,
            }),
            _ => None,
        },
    };
    if scheme == Scheme::Dpop && url.is_none() {
        return Err(ApiError::Unauthenticated(
            "DPoP-bound tokens need `ext_authz.public_url` configured".into(),
        ));
    }
    let agent = verify_agent_token(state, token, how).await?;

    let Some(matched) = config.matching(method.as_str(), path) else {
        let mut event = state.event(EventType::Decision, &format!("agent:{}", agent.row().id));
        event.agent = Some(agent.row().id.to_string());
        event.decision = Some("deny".into());
        event.detail = Some(serde_json::json!({
            "ext_authz": {"method": method.as_str(), "path": path},
            "why": "no route maps the request to an action",
        }));
        state.audit(event).await?;
        let reason = bridle_core::decision::Reason {
            code: bridle_core::ReasonCode::NotGranted,
            message: format!("no route maps `{method} {path}` to an action"),
            source: None,
        };
        return Ok(refused(DecisionResponse {
            decision: "deny",
            decision_id: String::new(),
            reasons: vec![reason],
            obligations: Vec::new(),
            approval_id: None,
        }));
    };
    let args = arguments(uri, body, &matched.params);
    let d = decide_as(state, &agent, &matched.action, args, matched.resource).await?;
    if d.decision == "allow" {
        let mut r = StatusCode::OK.into_response();
        let h = r.headers_mut();
        h.insert("x-bridle-decision", HeaderValue::from_static("allow"));
        h.insert("x-bridle-decision-id", header_value(&d.decision_id));
        return Ok(r);
    }
    Ok(refused(d))
}

fn refused(d: DecisionResponse) -> Response {
    let code = d
        .reasons
        .first()
        .map(|r| r.code.as_str())
        .unwrap_or("not_granted");
    let body = ExtAuthzDenial {
        decision: d.decision,
        decision_id: (!d.decision_id.is_empty()).then_some(d.decision_id),
        reasons: d.reasons,
        approval_id: d.approval_id,
    };
    let mut r = (StatusCode::FORBIDDEN, axum::Json(&body)).into_response();
    let h = r.headers_mut();
    h.insert("x-bridle-decision", header_value(body.decision));
    h.insert("x-bridle-reason", header_value(code));
    if let Some(id) = &body.approval_id {
        h.insert("x-bridle-approval-id", header_value(id));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
