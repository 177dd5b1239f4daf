//! The OpenAPI 3.1 document of the API, generated from the handlers'
//! `#[utoipa::path]` annotations and the request and response types'
//! `ToSchema` derives; served at `GET /openapi.json` without authentication.
//!
//! Every response body is a type the handler returns ([`crate::views`] and
//! the routes' own bodies), so the schemas are those types' derives; this
//! module adds the reusable error responses (all `application/problem+json`
//! with the [`Problem`] schema), the security schemes, and the fixes of what
//! utoipa renders wrongly. `tests/openapi.rs` snapshots the whole document;
//! the schemathesis run (`scripts/schemathesis.sh`) checks live responses
//! against it.

use std::sync::LazyLock;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, HeaderBuilder, Ref, RefOr, ResponseBuilder, response::Response};
use utoipa::{Modify, OpenApi, PartialSchema};

use crate::error::{FieldError, Problem};
use crate::routes;

mod responses;

pub(crate) use responses::{
    BadRequest, Conflict, Forbidden, Invalid, NotFound, PayloadTooLarge, TooManyRequests,
    Unauthorized, Unavailable,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bridle API",
        description = "Identity, authorization and audit for AI agents: the agent registry, \
            OAuth 2.0 for agents, decisions, approvals, elevation, lifecycle, audit, findings and the compliance report. \
            Every error is `application/problem+json` (RFC 9457), except the OAuth endpoints, \
            which answer in the OAuth error format (RFC 6749 §5.2)."
    ),
    paths(
        routes::health,
        routes::ready,
        serve,
        routes::manifest_schema,
        routes::oauth::metadata,
        routes::oauth::jwks,
        routes::oauth::authorize::authorize,
        routes::oauth::grants::token,
        routes::oauth::introspect::introspect,
        routes::oauth::introspect::revoke,
        routes::keys::list,
        routes::keys::rotate,
        routes::principals::create,
        routes::principals::deactivate,
        routes::agents::list,
        routes::agents::apply,
        routes::agents::show,
        routes::agents::suspend,
        routes::agents::resume,
        routes::agents::retire,
        routes::agents::review,
        routes::history::versions,
        routes::history::version,
        routes::history::diff,
        routes::usage::usage,
        routes::usage::suggestion,
        routes::replay::replay,
        routes::credentials::create,
        routes::credentials::list,
        routes::credentials::rotate,
        routes::credentials::revoke,
        routes::elevations::request,
        routes::elevations::list,
        routes::elevations::end,
        routes::decisions::decide,
        routes::decisions::outcome,
        routes::reachable::reachable,
        routes::ext_authz::check,
        routes::approvals::list,
        routes::approvals::show,
        routes::approval_wait::wait,
        routes::approvals::approve,
        routes::approvals::deny,
        routes::audit::list,
        routes::audit::verify,
        routes::audit::checkpoints,
        routes::findings::list,
        routes::reports::compliance,
        routes::metrics::scrape,
    ),
    components(
        schemas(Problem, FieldError),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            Invalid,
            Unavailable,
            TooManyRequests
        )
    ),
    modifiers(&SecuritySchemes, &Throttled),
    security(("bearer" = [])),
    tags(
        (name = "health", description = "Liveness and the API description"),
        (name = "oauth", description = "OAuth 2.0 for agents (RFC 6749, 7009, 7517, 7523, 7636, 7662, 8414, 8693, 8707, 9068, 9207, 9449), client metadata documents, and the signing keys"),
        (name = "principals", description = "Humans and service principals"),
        (name = "agents", description = "The agent registry and lifecycle"),
        (name = "elevations", description = "Just-in-time extra scope"),
        (name = "decisions", description = "The control point"),
        (name = "approvals", description = "Human approval of actions and elevations"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "findings", description = "Posture findings"),
        (name = "reports", description = "Evidence for auditors: the compliance report"),
        (name = "metrics", description = "Prometheus metrics"),
    )
)]
struct ApiDoc;

/// The OpenAPI document of every route of [`routes::router`], as utoipa
/// builds it. Serve [`document_json`]: it fixes what utoipa gets wrong.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The OpenAPI document as served at `/openapi.json`.
pub fn document_json() -> Result<serde_json::Value, serde_json::Error> {
    let mut doc = serde_json::to_value(document())?;
    // One handler serves every method of `/ext_authz/…`; operation ids must
    // still be unique.
    if let Some(item) = doc
        .pointer_mut("/paths/~1ext_authz~1{path}")
        .and_then(|i| i.as_object_mut())
    {
        for (method, op) in item.iter_mut() {
            if let Some(op) = op.as_object_mut() {
                op.insert("operationId".into(), format!("ext_authz_{method}").into());
            }
        }
    }
    let operations = doc
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.as_object_mut());
    for operation in operations {
        // utoipa renders an optional body (`request_body = Option<T>`) as
        // `oneOf: [null, T]`, i.e. "T or JSON null"; it means "T, or no body".
        if let Some(body) = operation.get_mut("requestBody")
            && body.get("required") != Some(&serde_json::Value::Bool(true))
        {
            let media = body
                .get_mut("content")
                .and_then(|c| c.as_object_mut())
                .into_iter()
                .flat_map(|c| c.values_mut());
            for media in media {
                let Some(one_of) = media.pointer("/schema/oneOf").and_then(|o| o.as_array()) else {
                    continue;
                };
                let null = serde_json::json!({ "type": "null" });
                if let [a, b] = one_of.as_slice()
                    && (*a == null || *b == null)
                {
                    media["schema"] = if *a == null { b.clone() } else { a.clone() };
                }
            }
        }
        let Some(responses) = operation.get_mut("responses") else {
            continue;
        };
        fix_links(responses);
    }
    Ok(doc)
}

/// utoipa 5 serializes Link objects with snake_case keys (`operation_id`);
/// OpenAPI spells them in camelCase.
fn fix_links(responses: &mut serde_json::Value) {
    let responses = responses
        .as_object_mut()
        .into_iter()
        .flat_map(|r| r.values_mut());
    for response in responses {
        let links = response.get_mut("links").and_then(|l| l.as_object_mut());
        for link in links.into_iter().flat_map(|l| l.values_mut()) {
            let Some(link) = link.as_object_mut() else {
                continue;
            };
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(v) = link.remove(snake) {
                    link.insert(camel.to_owned(), v);
                }
            }
        }
    }
}

/// The document, serialized once.
static DOCUMENT: LazyLock<Result<String, serde_json::Error>> =
    LazyLock::new(|| document_json().and_then(|doc| serde_json::to_string(&doc)));

/// This OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    operation_id = "openapi",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API", body = Object, content_type = "application/json"),
    ),
)]
pub async fn serve() -> HttpResponse {
    match DOCUMENT.as_ref() {
        Ok(json) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json.clone(),
        )
            .into_response(),
        Err(e) => {
            crate::error::ApiError::Internal(format!("openapi document: {e}")).into_response()
        }
    }
}

/// The example of `PUT /v1/agents/{id}`: a reference manifest.
pub(crate) fn manifest_example() -> serde_json::Value {
    bridle_core::Manifest::from_source(include_str!("../../../../examples/procurement-bot.yaml"))
        .map(|m| m.document)
        .unwrap_or_default()
}

/// Adds the security schemes the operations refer to.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "A principal's API key (`bk_…`), or an agent's access token (a JWT from `/oauth/token`)"
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description = Some(
            "OAuth `client_secret_basic`: the agent credential's client_id and client_secret \
             (form-urlencoded, RFC 6749 §2.3.1)"
                .into(),
        );
        components.add_security_scheme("client_secret_basic", SecurityScheme::Http(basic));
    }
}

/// Every operation that authenticates (documents a 401) may also answer 429
/// while the caller's credential or source is locked ([`crate::throttle`]);
/// the OAuth endpoints in the OAuth error format.
struct Throttled;

impl Modify for Throttled {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let retry_after = || {
            HeaderBuilder::new()
                .schema(u64::schema())
                .description(Some("Seconds until the lock ends"))
                .build()
        };
        for (path, item) in &mut openapi.paths.paths {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for op in ops.into_iter().flatten() {
                if !op.responses.responses.contains_key("401") {
                    continue;
                }
                let response: RefOr<Response> = if path.starts_with("/oauth/") {
                    ResponseBuilder::new()
                        .description(
                            "`temporarily_unavailable`: too many failed client authentications from this source",
                        )
                        .content(
                            "application/json",
                            Content::new(Some(Ref::from_schema_name("OAuthErrorBody"))),
                        )
                        .header("Retry-After", retry_after())
                        .build()
                        .into()
                } else {
                    Ref::from_response_name("TooManyRequests").into()
                };
                op.responses.responses.insert("429".into(), response);
            }
        }
    }
}
