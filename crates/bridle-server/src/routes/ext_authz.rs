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
use bridle_core::id::ToolName;
use bridle_core::resource::Resource;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{
    AgentCaller, DpopEvidence, Presentation, Scheme, authorization, dpop_header, looks_like_jwt,
    verify_agent_token,
};
use crate::error::{ApiError, FieldError};
use crate::json;
use crate::openapi as doc;
use crate::service::{self, ActionCall, Via};
use crate::state::AppState;
use crate::views::decision as views;
use bridle_core::Effect;

/// Why a request was refused (403).
#[derive(Debug, Serialize, ToSchema)]
pub struct ExtAuthzDenial {
    /// `deny` or `approval_required`.
    decision: views::Effect,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision_id: Option<String>,
    reasons: Vec<views::Reason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    approval_id: Option<String>,
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Arguments: query parameters, the JSON body's fields and the captured
/// path segments. One name given twice — a repeated query parameter, a
/// duplicate JSON key, or the same name in two places — is refused with
/// every place named: the service behind Envoy might read the other one.
fn arguments(
    uri: &Uri,
    body: &Bytes,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<serde_json::Map<String, serde_json::Value>, Vec<FieldError>> {
    let field = |path: String, message: String| FieldError {
        path,
        message,
        line: None,
        column: None,
    };
    let mut args = serde_json::Map::new();
    let mut errors = Vec::new();
    match axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri) {
        Ok(axum::extract::Query(pairs)) => {
            for (k, v) in pairs {
                if args.contains_key(&k) {
                    errors.push(field(
                        format!("query.{k}"),
                        format!("the query gives `{k}` more than once"),
                    ));
                }
                args.insert(k, v.into());
            }
        }
        Err(e) => errors.push(field("query".into(), e.body_text())),
    }
    if let Err(json::Strictness::Violations(found)) = json::check(body) {
        errors.extend(found.into_iter().map(|e| FieldError {
            path: format!("body.{}", e.path),
            ..e
        }));
    } else if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) {
        for (k, v) in fields {
            if args.contains_key(&k) {
                errors.push(field(
                    format!("body.{k}"),
                    format!("`{k}` is both a query parameter and a body field"),
                ));
            }
            args.insert(k, v);
        }
    }
    for (k, v) in params {
        if args.contains_key(k) {
            errors.push(field(
                format!("path.{k}"),
                format!("`{k}` is a path segment and also a query parameter or body field"),
            ));
        }
        args.insert(k.clone(), v.clone().into());
    }
    if errors.is_empty() {
        Ok(args)
    } else {
        Err(errors)
    }
}

/// Envoy ext_authz check (HTTP service): 200 lets the request through; 403
/// carries the reason code in `x-bridle-reason` and in the body; 400 (also
/// recorded as a denial) for a request that names an argument twice or a
/// resource outside the resource grammar; 401 for a missing or invalid agent
/// token or one not issued for an `ext_authz.audiences` entry.
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
        (status = 400, response = doc::BadRequest),
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
    // Only tokens for an API behind Envoy: the one configured audience that
    // full verification must then find in `aud` (never the server's own).
    let Some(audience) =
        crate::jose::unverified_claim(token, "aud").filter(|a| config.audiences.contains(a))
    else {
        return Err(wrong_audience());
    };
    let url = config
        .public_url
        .as_deref()
        .map(|base| format!("{}{path}", base.trim_end_matches('/')));
    let proof = dpop_header(headers)?;
    let how = Presentation {
        audience: Some(&audience),
        scheme: Some(scheme),
        dpop: match (proof, &url) {
            (Some(proof), Some(url)) => Some(DpopEvidence {
                proof,
                method: method.as_str(),
                url,
            }),
            _ => None,
        },
        // One check per request: every proof is used up here.
        pep: None,
    };
    if scheme == Scheme::Dpop && url.is_none() {
        return Err(ApiError::Unauthenticated(
            "DPoP-bound tokens need `ext_authz.public_url` configured".into(),
        ));
    }
    let agent = verify_agent_token(state, token, how).await?;
    if agent.claims.aud != audience {
        return Err(wrong_audience());
    }

    let via = Via::ExtAuthz {
        method: method.as_str().to_owned(),
        path: path.to_owned(),
    };
    let Some(matched) = config.matching(method.as_str(), path) else {
        service::decision::refuse(
            state,
            &agent,
            &via,
            None,
            "no route maps the request to an action",
            None,
        )
        .await?;
        let reason = bridle_core::decision::Reason {
            code: bridle_core::ReasonCode::NotGranted,
            message: format!("no route maps `{method} {path}` to an action"),
            source: None,
        };
        return Ok(refused(Effect::Deny, None, vec![reason], None));
    };
    // Route actions are validated when the table loads.
    let action: ToolName = matched
        .action
        .parse()
        .map_err(|e: bridle_core::id::IdError| {
            ApiError::Internal(format!("ext_authz route action: {e}"))
        })?;
    let resource = matched.resource.as_deref().map(Resource::parse).transpose();
    let (args, resource) = match (arguments(uri, body, &matched.params), resource) {
        (Ok(args), Ok(resource)) => (args, resource),
        (args, resource) => {
            let mut errors = args.err().unwrap_or_default();
            if let Err(e) = resource {
                errors.push(FieldError {
                    path: "resource".into(),
                    message: e.to_string(),
                    line: None,
                    column: None,
                });
            }
            return malformed(state, &agent, &via, &action, errors).await;
        }
    };
    let call = ActionCall {
        action,
        args,
        resource,
    };
    let answer = service::decision::decide(state, &agent, &via, call).await?;
    if answer.decision.effect == Effect::Allow {
        let mut r = StatusCode::OK.into_response();
        let h = r.headers_mut();
        h.insert("x-bridle-decision", HeaderValue::from_static("allow"));
        h.insert(
            "x-bridle-decision-id",
            header_value(answer.decision_id.as_str()),
        );
        return Ok(r);
    }
    Ok(refused(
        answer.decision.effect,
        Some(answer.decision_id.into_string()),
        answer.decision.reasons,
        answer.approval_id.map(|a| a.into_string()),
    ))
}

fn wrong_audience() -> ApiError {
    ApiError::Unauthenticated(
        "invalid access token: ext_authz accepts only tokens issued for one of `ext_authz.audiences`"
            .into(),
    )
}

/// A request that cannot be decided as sent (a name given twice, a resource
/// outside the grammar): denied, recorded, and answered 400 — Envoy passes
/// the check's status and body on to the client.
async fn malformed(
    state: &AppState,
    agent: &AgentCaller,
    via: &Via,
    action: &ToolName,
    errors: Vec<FieldError>,
) -> Result<Response, ApiError> {
    let decision_id = service::decision::refuse(
        state,
        agent,
        via,
        Some(action),
        "the request is ambiguous or names a resource outside the grammar",
        Some(serde_json::to_value(&errors).map_err(|e| ApiError::Internal(e.to_string()))?),
    )
    .await?;
    let mut r = ApiError::Malformed {
        detail: "the request cannot be decided as sent: a name is given twice, or the resource does not fit the resource grammar".into(),
        errors,
    }
    .into_response();
    let h = r.headers_mut();
    h.insert("x-bridle-decision", HeaderValue::from_static("deny"));
    if let Some(id) = &decision_id {
        h.insert("x-bridle-decision-id", header_value(id.as_str()));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

fn refused(
    effect: Effect,
    decision_id: Option<String>,
    reasons: Vec<bridle_core::decision::Reason>,
    approval_id: Option<String>,
) -> Response {
    let code = reasons.first().map_or("not_granted", |r| r.code.as_str());
    let mut r = (
        StatusCode::FORBIDDEN,
        axum::Json(ExtAuthzDenial {
            decision: effect.into(),
            decision_id,
            reasons: reasons.into_iter().map(Into::into).collect(),
            approval_id: approval_id.clone(),
        }),
    )
        .into_response();
    let h = r.headers_mut();
    h.insert("x-bridle-decision", header_value(effect.as_str()));
    h.insert("x-bridle-reason", header_value(code));
    if let Some(id) = &approval_id {
        h.insert("x-bridle-approval-id", header_value(id));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
