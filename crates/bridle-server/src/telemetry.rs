//! OpenTelemetry spans of the API: one HTTP server span per request and one
//! span per decision, as `tracing` spans of the target [`TARGET`]. The
//! binary exports them over OTLP when it is configured to
//! (`bridle_cli::telemetry`); otherwise no subscriber wants the target, the
//! spans are disabled at their call sites and nothing is computed.
//!
//! Attribute names follow the OpenTelemetry semantic conventions (HTTP
//! server spans; GenAI `gen_ai.agent.id` and `gen_ai.tool.name`). What is
//! never recorded: tokens, keys, argument values, reason messages (they
//! can quote an argument), query strings.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry_http::HeaderExtractor;
use tracing::Instrument as _;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::service::ServiceError;
use crate::service::decision::{Answer, Via};

/// The `tracing` target of every span meant for OpenTelemetry (the
/// gateway's too): the exporter's layer takes only it, the log output
/// leaves it out.
pub const TARGET: &str = "bridle_otel";

/// The HTTP server span of one request (`{method} {route}`), the child of
/// the caller's W3C `traceparent` when it sent one.
pub async fn http_span(req: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        target: TARGET,
        "http.server",
        otel.name = %span_name(&req),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = req.method().as_str(),
        http.route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str),
        url.path = req.uri().path(),
        url.scheme = "http",
        http.response.status_code = Empty,
        error.type = Empty,
    );
    if span.is_disabled() {
        return next.run(req).await;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&HeaderExtractor(req.headers()))
    });
    // Fails only when the span is already closed or not an OpenTelemetry one.
    let _ = span.set_parent(parent);
    let res = next.run(req).instrument(span.clone()).await;
    let status = res.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "error");
        span.record("error.type", status.as_str());
    }
    res
}

/// `{method} {route}` with the route template (low cardinality), or the
/// method alone for a path no route matched.
fn span_name(req: &Request) -> String {
    match req.extensions().get::<MatchedPath>() {
        Some(route) => format!("{} {}", req.method(), route.as_str()),
        None => req.method().to_string(),
    }
}

/// The span of one decision: `bridle.decide {action}`, with the agent and
/// the action as GenAI attributes; its outcome is recorded by [`decided`].
pub(crate) fn decision_span(agent: &str, action: &str, via: &Via) -> tracing::Span {
    tracing::info_span!(
        target: TARGET,
        "bridle.decide",
        otel.name = %format_args!("bridle.decide {action}"),
        otel.kind = "internal",
        otel.status_code = Empty,
        gen_ai.agent.id = agent,
        gen_ai.tool.name = action,
        bridle.via = via_name(via),
        bridle.decision = Empty,
        bridle.reason = Empty,
        bridle.decision_id = Empty,
        bridle.approval_id = Empty,
        bridle.audit.seq = Empty,
        error.type = Empty,
    )
}

fn via_name(via: &Via) -> &'static str {
    match via {
        Via::Agent => "agent",
        Via::Pep(_) => "pep",
        Via::ExtAuthz { .. } => "ext_authz",
    }
}

/// Record what the decision came to (or that none was reached).
pub(crate) fn decided(span: &tracing::Span, answer: &Result<Answer, ServiceError>) {
    match answer {
        Ok(a) => {
            span.record("bridle.decision", a.decision.effect.as_str());
            if let Some(code) = a.decision.primary_code() {
                span.record("bridle.reason", code.as_str());
            }
            span.record("bridle.decision_id", a.decision_id.as_str());
            if let Some(id) = &a.approval_id {
                span.record("bridle.approval_id", id.as_str());
            }
        }
        Err(e) => {
            span.record("otel.status_code", "error");
            span.record("error.type", error_type(e));
        }
    }
}

/// A low-cardinality class of the failure (never its message).
fn error_type(e: &ServiceError) -> &'static str {
    match e {
        ServiceError::Store(_) => "store",
        _ => "_OTHER",
    }
}
