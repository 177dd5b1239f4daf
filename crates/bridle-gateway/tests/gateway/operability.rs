//! Running the gateway: `/healthz`, the pep key at start-up, TLS end to
//! end, and one trace from the agent to the upstream.

use std::time::{Duration, Instant};

use bridle_gateway::{Config, Gateway};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

use super::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_public_and_names_upstreams_and_the_server() {
    let env = start().await;
    let url = env.mcp.replace("/mcp", "/healthz");
    let deadline = Instant::now() + Duration::from_secs(10);
    let v = loop {
        let r = env.http.get(&url).send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        if status == 200 {
            break v;
        }
        assert_eq!(status, 503, "{v}");
        assert!(Instant::now() < deadline, "never healthy: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        v,
        json!({"status": "ok", "bridle": "reachable", "upstreams": {"up": "connected"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pep_key_is_named_at_start_up() {
    let env = start().await;
    let yaml = format!(
        "listen: 127.0.0.1:0\nbridle_url: {}\nupstreams:\n  - name: up\n    url: http://127.0.0.1:9/mcp\n    prefix: up.\n",
        env.bridle
    );
    let config = Config::parse(&yaml, "test.yaml").unwrap();
    let gateway = Gateway::with_key(config, "bk_not-a-key-of-anyone-0123456789".into()).unwrap();
    let e = gateway.check_key().await.unwrap_err().to_string();
    assert!(e.contains("`BRIDLE_PEP_KEY`"), "{e}");
    assert!(e.contains("refused"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_end_to_end_the_gateway_initializes_lists_and_decides() {
    let ca = TestCa::new();
    let env = start_with("20s", Some(&ca)).await;
    assert!(env.mcp.starts_with("https://"), "{}", env.mcp);
    // The protected-resource metadata names the https resource.
    let meta: Value = env
        .http
        .get(
            env.mcp
                .replacen("/mcp", "/.well-known/oauth-protected-resource/mcp", 1),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], env.mcp.as_str(), "{meta}");
    let token = env.token(&env.mcp).await;
    // `initialize` over https; listing and calling ask the https server.
    let client = env.client(&token).await;
    assert!(client.peer_info().is_some(), "no initialize result");
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "up.echo"), "{tools:?}");
    let echo = CallToolRequestParams::new("up.echo")
        .with_arguments(json!({"message": "over tls"}).as_object().unwrap().clone());
    let r = client.call_tool(echo).await.unwrap();
    assert_eq!(text(&r), "Echo: over tls");
    client.cancel().await.unwrap();
    // A gateway that does not trust the server's CA cannot reach it.
    let yaml = format!(
        "listen: 127.0.0.1:0\nbridle_url: {}\nupstreams:\n  - name: up\n    url: http://127.0.0.1:1/mcp\n    prefix: up.\n",
        env.bridle
    );
    let config = Config::parse(&yaml, "untrusting.yaml").unwrap();
    let untrusting = Gateway::with_key(config, "bk_whatever-0123456789abcdef".into()).unwrap();
    let e = untrusting.check_key().await.unwrap_err().to_string();
    assert!(e.contains("cannot check the key"), "{e}");
}

/// One exporter for the process, behind a global subscriber that takes
/// only the spans meant for OpenTelemetry.
fn exporter() -> &'static opentelemetry_sdk::trace::InMemorySpanExporter {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    static EXPORTER: std::sync::OnceLock<opentelemetry_sdk::trace::InMemorySpanExporter> =
        std::sync::OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("test"))
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.target() == bridle_gateway::telemetry::TARGET
            }));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .unwrap();
        exporter
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_one_trace_from_the_agent_through_the_decision_to_the_upstream() {
    use opentelemetry::trace::{SpanKind, TraceId};
    use opentelemetry_sdk::trace::SpanData;
    exporter();
    let env = start().await;
    let token = env.token(&env.mcp).await;
    let trace = "6bf92f3577b34da6a3ce929d0e0e4738";
    let r = modern(
        &env,
        &token,
        7,
        "tools/call",
        json!({"name": "up.echo", "arguments": {"message": "show traceparent"}}),
    )
    .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
    .send()
    .await
    .unwrap();
    let v = response(r).await;
    let echoed = v["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();

    let trace_id = TraceId::from_hex(trace).unwrap();
    let names = [
        "tools/call up.echo",
        "POST /v1/decisions",
        "bridle.decide up.echo",
        "tools/call echo",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans: Vec<SpanData> = loop {
        let spans: Vec<SpanData> = exporter()
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace_id)
            .collect();
        if names.iter().all(|n| spans.iter().any(|s| s.name == *n)) {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "spans of the trace: {:?}",
            spans
                .iter()
                .map(|s| (&s.name, s.span_kind.clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let one = |name: &str, kind: SpanKind| {
        let found: Vec<&SpanData> = spans
            .iter()
            .filter(|s| s.name == name && s.span_kind == kind)
            .collect();
        assert_eq!(found.len(), 1, "{name} {kind:?}: {:?}", spans);
        found[0]
    };
    let attr = |s: &SpanData, key: &str| {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.as_str().into_owned())
    };
    let mcp = one("tools/call up.echo", SpanKind::Server);
    assert_eq!(format!("{}", mcp.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(attr(mcp, "mcp.method.name").as_deref(), Some("tools/call"));
    assert_eq!(attr(mcp, "gen_ai.tool.name").as_deref(), Some("up.echo"));
    assert_eq!(
        attr(mcp, "gen_ai.operation.name").as_deref(),
        Some("execute_tool")
    );
    assert_eq!(attr(mcp, "jsonrpc.request.id").as_deref(), Some("7"));
    assert_eq!(
        attr(mcp, "mcp.protocol.version").as_deref(),
        Some("2026-07-28")
    );
    assert_eq!(attr(mcp, "error.type"), None);
    // The gateway's call to the server, the server's request span, the
    // decision: one chain of parents.
    let ask = one("POST /v1/decisions", SpanKind::Client);
    assert_eq!(ask.parent_span_id, mcp.span_context.span_id());
    let served = one("POST /v1/decisions", SpanKind::Server);
    assert_eq!(served.parent_span_id, ask.span_context.span_id());
    let decide = one("bridle.decide up.echo", SpanKind::Internal);
    assert_eq!(decide.parent_span_id, served.span_context.span_id());
    assert_eq!(attr(decide, "bridle.decision").as_deref(), Some("allow"));
    assert_eq!(attr(decide, "gen_ai.agent.id").as_deref(), Some("mcp-bot"));
    // The upstream call, its trace context passed on in `_meta`.
    let up = one("tools/call echo", SpanKind::Client);
    assert_eq!(up.parent_span_id, mcp.span_context.span_id());
    assert_eq!(attr(up, "bridle.upstream").as_deref(), Some("up"));
    assert_eq!(
        echoed,
        format!("Echo: 00-{trace}-{}-01", up.span_context.span_id()),
    );
    for s in &spans {
        for kv in &s.attributes {
            assert!(
                !kv.value.as_str().contains(&token),
                "the token in `{}`",
                kv.key
            );
        }
    }

    // A call that fails (its approval does not come in time): the MCP
    // span carries the JSON-RPC error code and the reason.
    let env = start_waiting("1s").await;
    let token = env.token(&env.mcp).await;
    let trace = "7bf92f3577b34da6a3ce929d0e0e4739";
    let r = modern(
        &env,
        &token,
        8,
        "tools/call",
        json!({"name": "up.add", "arguments": {"a": 1, "b": 2}}),
    )
    .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
    .send()
    .await
    .unwrap();
    let v = response(r).await;
    assert_eq!(v["error"]["code"], -32003, "{v}");
    let trace_id = TraceId::from_hex(trace).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let denied = loop {
        if let Some(s) = exporter()
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .find(|s| {
                s.span_context.trace_id() == trace_id
                    && s.span_kind == SpanKind::Server
                    && s.name.starts_with("tools/call")
            })
        {
            break s;
        }
        assert!(Instant::now() < deadline, "no MCP span of the failed call");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(attr(&denied, "error.type").as_deref(), Some("-32003"));
    assert_eq!(
        attr(&denied, "rpc.response.status_code").as_deref(),
        Some("-32003")
    );
    assert_eq!(
        attr(&denied, "bridle.reason").as_deref(),
        Some("approval_required")
    );
    assert!(
        matches!(denied.status, opentelemetry::trace::Status::Error { .. }),
        "{:?}",
        denied.status
    );
}
