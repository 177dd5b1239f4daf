//! OpenTelemetry spans of the API, exported in-process: the real server,
//! a decision over HTTP with a caller's W3C `traceparent`, then the spans
//! the exporter got (names, kinds, attributes, parents, trace id).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

#[expect(
    unused_macros,
    reason = "this suite runs on SQLite only: spans do not depend on the store"
)]
mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanKind, TraceId, TracerProvider as _};
use opentelemetry::{SpanId, Value as OtelValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::json;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

use common::{Backend, Server};

/// One exporter for the process: the subscriber is global, since the
/// server's tasks run on the runtime's worker threads.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("test"))
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.target() == bridle_server::telemetry::TARGET
            }));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .unwrap();
        exporter
    })
}

/// The finished spans of `trace`, once `n` of them have ended.
async fn spans_of(trace: TraceId, n: usize) -> Vec<SpanData> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans: Vec<SpanData> = exporter()
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace)
            .collect();
        if spans.len() >= n {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "only {} spans of {trace}: {:?}",
            spans.len(),
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a OtelValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn text(span: &SpanData, key: &str) -> String {
    match attr(span, key) {
        Some(v) => v.as_str().into_owned(),
        None => panic!("`{}` has no `{key}`: {:?}", span.name, span.attributes),
    }
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span `{name}` in {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

/// Decide `action` with a `traceparent` of trace `trace` (parent `parent`).
async fn decide_traced(
    s: &Server,
    token: &str,
    action: &str,
    trace: &str,
    parent: &str,
) -> serde_json::Value {
    let r = s
        .http
        .post(s.url("/v1/decisions"))
        .bearer_auth(token)
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .json(&json!({"action": action, "args": {"branch": "sensitive-value-4417"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_is_a_span_under_the_request_in_the_callers_trace() {
    exporter();
    let s = Server::start(Backend::Sqlite, |_| {}).await;
    s.people().await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let answer = decide_traced(&s, &token, "ci.run_tests", trace, parent).await;
    assert_eq!(answer["decision"], "allow", "{answer}");

    let spans = spans_of(TraceId::from_hex(trace).unwrap(), 2).await;
    let http = named(&spans, "POST /v1/decisions");
    assert_eq!(http.span_kind, SpanKind::Server);
    assert_eq!(http.parent_span_id, SpanId::from_hex(parent).unwrap());
    assert!(http.parent_span_is_remote);
    assert_eq!(text(http, "http.request.method"), "POST");
    assert_eq!(text(http, "http.route"), "/v1/decisions");
    assert_eq!(text(http, "url.path"), "/v1/decisions");
    assert_eq!(
        attr(http, "http.response.status_code"),
        Some(&OtelValue::I64(200))
    );

    let decide = named(&spans, "bridle.decide ci.run_tests");
    assert_eq!(decide.span_kind, SpanKind::Internal);
    assert_eq!(decide.parent_span_id, http.span_context.span_id());
    assert_eq!(text(decide, "gen_ai.agent.id"), "swe-bot");
    assert_eq!(text(decide, "gen_ai.tool.name"), "ci.run_tests");
    assert_eq!(text(decide, "bridle.decision"), "allow");
    assert_eq!(text(decide, "bridle.reason"), "granted");
    assert_eq!(text(decide, "bridle.via"), "agent");
    assert_eq!(
        text(decide, "bridle.decision_id"),
        answer["decision_id"].as_str().unwrap()
    );
    assert!(
        matches!(attr(decide, "bridle.audit.seq"), Some(OtelValue::I64(n)) if *n > 0),
        "{:?}",
        decide.attributes
    );

    // A denial, in another trace: its effect and reason code.
    let trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let answer = decide_traced(&s, &token, "secrets.read", trace, parent).await;
    assert_eq!(answer["decision"], "deny", "{answer}");
    let spans = spans_of(TraceId::from_hex(trace).unwrap(), 2).await;
    let decide = named(&spans, "bridle.decide secrets.read");
    assert_eq!(text(decide, "bridle.decision"), "deny");
    assert_eq!(text(decide, "bridle.reason"), "forbidden");

    // Neither the token nor an argument's value is in any span.
    for span in exporter().get_finished_spans().unwrap() {
        for kv in &span.attributes {
            let v = kv.value.as_str();
            assert!(!v.contains(&token), "the token in `{}`", kv.key);
            assert!(
                !v.contains("sensitive-value-4417"),
                "an argument in `{}`",
                kv.key
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_traceparent_starts_its_own_trace() {
    exporter();
    let s = Server::start(Backend::Sqlite, |_| {}).await;
    s.people().await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    let answer = s.decide(&token, "ci.run_tests", json!({})).await;
    let id = answer["decision_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let decide = loop {
        let found = exporter()
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .find(|s| attr(s, "bridle.decision_id").is_some_and(|v| v.as_str() == id.as_str()));
        if let Some(span) = found {
            break span;
        }
        assert!(Instant::now() < deadline, "no span of decision {id}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let spans = spans_of(decide.span_context.trace_id(), 2).await;
    let http = named(&spans, "POST /v1/decisions");
    assert_eq!(http.parent_span_id, SpanId::INVALID, "a root span");
    assert_eq!(decide.parent_span_id, http.span_context.span_id());
}
