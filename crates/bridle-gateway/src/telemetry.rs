//! OpenTelemetry spans of the gateway, after the MCP semantic conventions:
//! a SERVER span per MCP request (`tools/call get_weather`), a CLIENT span
//! per call upstream and per HTTP call to the Bridle server, each with the
//! W3C trace context passed on (`traceparent` headers to the server,
//! `params._meta.traceparent` upstream). They are `tracing` spans of the
//! target [`TARGET`], which the binary exports only when OTLP is
//! configured; otherwise they are disabled and cost nothing.
//!
//! Never recorded: tokens, keys, argument values, resource URIs, error
//! messages (a denial's message can quote an argument).

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use rmcp::model::{ErrorCode, RequestMetaObject};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::{Map, Value};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The `tracing` target of the spans meant for OpenTelemetry (the same as
/// the server's).
pub const TARGET: &str = "bridle_otel";

/// The name of a span: `{mcp.method.name} {target}`, or the method alone.
fn name(method: &str, target: Option<&str>) -> String {
    match target {
        Some(t) => format!("{method} {t}"),
        None => method.to_owned(),
    }
}

/// What the MCP request is about: a tool (`tools/call`) or a prompt
/// (`prompts/get`) by name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    None,
    Tool(&'a str),
    Prompt(&'a str),
}

impl<'a> Target<'a> {
    fn name(self) -> Option<&'a str> {
        match self {
            Self::None => None,
            Self::Tool(t) | Self::Prompt(t) => Some(t),
        }
    }

    fn record(self, span: &Span) {
        match self {
            Self::None => {}
            Self::Tool(t) => {
                span.record("gen_ai.tool.name", t);
                span.record("gen_ai.operation.name", "execute_tool");
            }
            Self::Prompt(p) => {
                span.record("gen_ai.prompt.name", p);
            }
        }
    }
}

/// The SERVER span of one MCP request from the agent. Its parent is the
/// trace context in the request's `params._meta` (the MCP convention),
/// else the one in the HTTP request's `traceparent` header.
pub(crate) fn mcp_server(
    method: &'static str,
    target: Target<'_>,
    ctx: &RequestContext<RoleServer>,
) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "mcp.server",
        otel.name = %name(method, target.name()),
        otel.kind = "server",
        otel.status_code = Empty,
        mcp.method.name = method,
        gen_ai.operation.name = Empty,
        gen_ai.tool.name = Empty,
        gen_ai.prompt.name = Empty,
        jsonrpc.request.id = %ctx.id,
        mcp.session.id = Empty,
        mcp.protocol.version = Empty,
        network.transport = "tcp",
        network.protocol.name = "http",
        error.type = Empty,
        rpc.response.status_code = Empty,
        bridle.reason = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    target.record(&span);
    let parts = ctx.extensions.get::<axum::http::request::Parts>();
    let header = |n: &str| {
        parts
            .and_then(|p| p.headers.get(n))
            .and_then(|v| v.to_str().ok())
    };
    if let Some(id) = header("mcp-session-id") {
        span.record("mcp.session.id", id);
    }
    match header("mcp-protocol-version") {
        Some(v) => {
            span.record("mcp.protocol.version", v);
        }
        None => {
            if let Some(v) = ctx.meta.protocol_version() {
                span.record("mcp.protocol.version", v.to_string());
            }
        }
    }
    let propagator =
        |ex: &dyn Extractor| opentelemetry::global::get_text_map_propagator(|p| p.extract(ex));
    let from_meta = propagator(&MetaExtractor(&ctx.meta.0.0));
    let parent = if from_meta.span().span_context().is_valid() {
        from_meta
    } else {
        match parts {
            Some(p) => propagator(&HeaderExtractor(&p.headers)),
            None => from_meta,
        }
    };
    // Fails only when the span is not an OpenTelemetry one.
    let _ = span.set_parent(parent);
    span
}

/// The CLIENT span of a request to an upstream MCP server; the trace
/// context goes along in `_meta`.
pub(crate) fn mcp_client(
    method: &'static str,
    target: Target<'_>,
    upstream: &str,
    meta: &mut Option<RequestMetaObject>,
) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "mcp.client",
        otel.name = %name(method, target.name()),
        otel.kind = "client",
        otel.status_code = Empty,
        mcp.method.name = method,
        gen_ai.operation.name = Empty,
        gen_ai.tool.name = Empty,
        gen_ai.prompt.name = Empty,
        bridle.upstream = upstream,
        error.type = Empty,
        rpc.response.status_code = Empty,
        bridle.reason = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    target.record(&span);
    let cx = span.context();
    let meta = meta.get_or_insert_with(RequestMetaObject::new);
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut MetaInjector(&mut meta.0.0));
    });
    span
}

/// Record how an MCP request ended: `error.type` (the JSON-RPC error code,
/// or `tool_error` for a tool result with `isError`) and an error status.
pub(crate) fn ended<T>(span: &Span, result: &Result<T, McpError>, tool_error: bool) {
    match result {
        Err(e) => {
            let ErrorCode(code) = e.code;
            span.record("error.type", code.to_string());
            span.record("rpc.response.status_code", code.to_string());
            span.record("otel.status_code", "error");
            if let Some(reason) = e
                .data
                .as_ref()
                .and_then(|d| d.get("reason"))
                .and_then(Value::as_str)
            {
                span.record("bridle.reason", reason);
            }
        }
        Ok(_) if tool_error => {
            span.record("error.type", "tool_error");
            span.record("otel.status_code", "error");
        }
        Ok(_) => {}
    }
}

/// The CLIENT span of an HTTP call to the Bridle server
/// (`{method} {route}`); its trace context goes along in `traceparent`.
pub(crate) fn http_client(request: &mut reqwest::Request, route: &'static str) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "http.client",
        otel.name = %format_args!("{} {route}", request.method()),
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = request.method().as_str(),
        url.template = route,
        server.address = request.url().host_str(),
        server.port = request.url().port_or_known_default().map(i64::from),
        http.response.status_code = Empty,
        error.type = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let cx = span.context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(request.headers_mut()));
    });
    span
}

/// Record the answer (or the failure to get one) of an HTTP call.
pub(crate) fn http_ended(span: &Span, status: Option<u16>) {
    match status {
        Some(s) => {
            span.record("http.response.status_code", i64::from(s));
            if s >= 400 {
                span.record("error.type", s.to_string());
                span.record("otel.status_code", "error");
            }
        }
        None => {
            span.record("error.type", "_OTHER");
            span.record("otel.status_code", "error");
        }
    }
}

/// Reads `traceparent`/`tracestate` (string values only) from `_meta`.
struct MetaExtractor<'a>(&'a Map<String, Value>);

impl Extractor for MetaExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct MetaInjector<'a>(&'a mut Map<String, Value>);

impl Injector for MetaInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), Value::String(value));
    }
}
