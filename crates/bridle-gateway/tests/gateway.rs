//! The gateway end to end, in-process: the real Bridle server on a temp
//! SQLite file, a small rmcp upstream over streamable HTTP, the gateway in
//! front of it, and rmcp's own client as the agent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bridle_gateway::{Config, Gateway};
use rmcp::model::{
    ArgumentInfo, CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams,
    CompleteResult, CompletionInfo, ContentBlock, ErrorCode, InitializeResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, Reference, ServerCapabilities, Tool,
};
use rmcp::service::{RequestContext, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{
    StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
};
use rmcp::{
    ClientHandler, ErrorData as McpError, RoleClient, RoleServer, ServerHandler, ServiceExt,
};
use serde_json::{Value, json};

const ADMIN: &str = "bk_gateway-test-admin-0123456789";

const RECORD: &str = r#"
agent: mcp-bot
owner: alice
purpose: Exercise the MCP gateway
environment: dev
expires: 2099-01-01
tools:
  - name: up.echo
  - name: up.bare
  - name: up.add
    approval:
      approvers: [group:approvers]
      ttl: 1h
  - name: up.secret_*
  - name: up.prompt.greet
forbid: [up.secret_*]
"#;

/// The upstream: `echo`, `add`, `bare`, `secret_dump` and `delete` tools,
/// and completion of the `name` argument of its prompts. It counts the
/// `add` calls it runs and the completions it answers (the side effects a
/// test observes).
#[derive(Debug, Clone)]
struct Upstream {
    adds: Arc<AtomicUsize>,
    completions: Arc<AtomicUsize>,
}

fn schema(props: Value) -> serde_json::Map<String, Value> {
    json!({"type": "object", "properties": props})
        .as_object()
        .unwrap()
        .clone()
}

impl ServerHandler for Upstream {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_completions()
                .build(),
        )
    }

    async fn complete(
        &self,
        req: CompleteRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        self.completions.fetch_add(1, Ordering::SeqCst);
        let names: &[&str] = match &req.r#ref {
            Reference::Prompt(p) if p.name == "greet" => &["alice", "alfred", "bob"],
            Reference::Prompt(p) if p.name == "vault" => &["master-key"],
            _ => &[],
        };
        let values = names
            .iter()
            .filter(|n| n.starts_with(req.argument.value.as_str()))
            .map(|n| (*n).to_owned())
            .collect();
        let mut r = CompleteResult::new(CompletionInfo::new(values).unwrap());
        // An upstream on 2025-11-25 sends no `resultType`.
        r.result_type = None;
        Ok(r)
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(vec![
            Tool::new(
                "echo",
                "Echoes its message",
                schema(json!({"message": {"type": "string"}})),
            ),
            Tool::new(
                "add",
                "Adds a and b",
                schema(json!({"a": {"type": "number"}, "b": {"type": "number"}})),
            ),
            Tool::new(
                "bare",
                "Answers as a pre-2026 server does",
                schema(json!({})),
            ),
            Tool::new("secret_dump", "Dumps secrets", schema(json!({}))),
            Tool::new("delete", "Deletes everything", schema(json!({}))),
        ]))
    }

    async fn call_tool(
        &self,
        req: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // The agent's token never reaches an upstream.
        let parts = ctx.extensions.get::<axum::http::request::Parts>().unwrap();
        if parts.headers.contains_key("authorization") {
            return Err(McpError::invalid_request(
                "an Authorization header arrived upstream",
                None,
            ));
        }
        let args = req.arguments.unwrap_or_default();
        if req.name == "add" {
            self.adds.fetch_add(1, Ordering::SeqCst);
        }
        if req.name == "bare" {
            // An upstream on 2025-11-25 sends no `resultType`.
            let mut r = CallToolResult::success(vec![ContentBlock::text("bare")]);
            r.result_type = None;
            return Ok(CallToolResponse::Complete(r));
        }
        let text = match req.name.as_ref() {
            // What the gateway passed on of the trace context, for the
            // telemetry test.
            "echo" if args["message"] == "show traceparent" => format!(
                "Echo: {}",
                ctx.meta
                    .0
                    .0
                    .get("traceparent")
                    .and_then(Value::as_str)
                    .unwrap_or("none")
            ),
            // Progress for an agent that asked for it, on the token the
            // gateway sent; the token is in the answer.
            "echo" if args["message"] == "with progress" => {
                let token = ctx.meta.get_progress_token();
                if let Some(t) = &token {
                    for i in 0..=2 {
                        let p = ProgressNotificationParam::new(t.clone(), f64::from(i))
                            .with_total(2.0)
                            .with_message(format!("upstream step {i}"));
                        ctx.peer.notify_progress(p).await.unwrap();
                    }
                    // Work that takes a while after its last progress, as
                    // real work does: progress sent in the instant before
                    // an answer can be overtaken by it (rmcp handles each
                    // notification in a task of its own).
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                format!("Echo: progress token {}", json!(token))
            }
            "echo" => format!("Echo: {}", args["message"].as_str().unwrap_or_default()),
            "add" => format!(
                "{}",
                args["a"].as_f64().unwrap_or(0.0) + args["b"].as_f64().unwrap_or(0.0)
            ),
            other => format!("ran {other}"),
        };
        Ok(CallToolResponse::Complete(CallToolResult::success(vec![
            ContentBlock::text(text),
        ])))
    }
}

struct Env {
    bridle: String,
    mcp: String,
    http: reqwest::Client,
    adds: Arc<AtomicUsize>,
    completions: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn post(&self, path: &str, key: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.bridle))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn get(&self, path: &str, key: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.bridle))
            .bearer_auth(key);
        r.send().await.unwrap().json().await.unwrap()
    }

    /// An access token of `mcp-bot` for `resource`.
    async fn token(&self, resource: &str) -> String {
        let cred = self
            .post("/v1/agents/mcp-bot/credentials", ADMIN, json!({}))
            .await;
        let r = self
            .http
            .post(format!("{}/oauth/token", self.bridle))
            .basic_auth(
                cred["client_id"].as_str().unwrap(),
                cred["client_secret"].as_str(),
            )
            .form(&[("grant_type", "client_credentials"), ("resource", resource)])
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_owned()
    }

    async fn client(&self, token: &str) -> RunningService<RoleClient, ()> {
        self.client_with(token, ()).await
    }

    async fn client_with<H: ClientHandler>(
        &self,
        token: &str,
        handler: H,
    ) -> RunningService<RoleClient, H> {
        let config =
            StreamableHttpClientTransportConfig::with_uri(self.mcp.as_str()).auth_header(token);
        // The test's own client: it trusts the test CA under TLS.
        handler
            .serve(StreamableHttpClientTransport::with_client(
                self.http.clone(),
                config,
            ))
            .await
            .unwrap()
    }
}

async fn serve(router: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

async fn start() -> Env {
    start_waiting("20s").await
}

async fn start_waiting(approval_wait: &str) -> Env {
    start_with(approval_wait, None).await
}

/// A CA made for one test, and certificates it signed for `127.0.0.1`.
struct TestCa {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// Write a certificate for `127.0.0.1` and its key as `NAME.pem` and
    /// `NAME.key` in `dir`: the YAML/TOML `tls` of a listener.
    fn issue(&self, dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// The environment, every listener over https when `ca` is given: the
/// server and the gateway with certificates of that CA, the gateway
/// trusting it for the server (`bridle_ca_file`), the test's client too.
async fn start_with(approval_wait: &str, ca: Option<&TestCa>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let scheme = if ca.is_some() { "https" } else { "http" };
    let bridle = format!("{scheme}://{addr}");
    let mut config = bridle_server::Config {
        listen: addr,
        db: format!("sqlite://{}/bridle.db", dir.path().display()),
        issuer: Some(bridle.clone()),
        admin_token: Some(bridle_server::Secret::new(ADMIN)),
        ..bridle_server::Config::default()
    };
    let mut gateway_tls = String::new();
    if let Some(ca) = ca {
        let (cert, key) = ca.issue(dir.path(), "server");
        config.tls.cert_file = Some(cert);
        config.tls.key_file = Some(key);
        let (cert, key) = ca.issue(dir.path(), "gateway");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca.pem).unwrap();
        gateway_tls = format!(
            "tls:\n  cert_file: {}\n  key_file: {}\nbridle_ca_file: {}\n",
            cert.display(),
            key.display(),
            ca_file.display()
        );
    }
    let started = bridle_server::start(config).await.unwrap();
    tokio::spawn(bridle_server::serve_on(listener, started.state));

    let adds = Arc::new(AtomicUsize::new(0));
    let up_adds = adds.clone();
    let completions = Arc::new(AtomicUsize::new(0));
    let up_completions = completions.clone();
    let upstream = StreamableHttpService::new(
        move || {
            Ok(Upstream {
                adds: up_adds.clone(),
                completions: up_completions.clone(),
            })
        },
        std::sync::Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let up = serve(axum::Router::new().route_service("/mcp", upstream)).await;

    let mut http = reqwest::Client::builder();
    if let Some(ca) = ca {
        http = http.tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()]);
    }
    let http = http.build().unwrap();
    let env0 = Env {
        bridle: bridle.clone(),
        mcp: String::new(),
        http,
        adds,
        completions,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while env0
        .http
        .get(format!("{bridle}/healthz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pep = env0
        .post(
            "/v1/principals",
            ADMIN,
            json!({"id": "gateway", "roles": ["pep"]}),
        )
        .await;
    env0.post("/v1/principals", ADMIN, json!({"id": "alice"}))
        .await;
    let r = env0
        .http
        .put(format!("{bridle}/v1/agents/mcp-bot"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/yaml")
        .body(RECORD)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    let gw_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = gw_listener.local_addr().unwrap();
    let yaml = format!(
        "listen: {gw}\nbridle_url: {bridle}\napproval_wait: {approval_wait}\n{gateway_tls}upstreams:\n  - name: up\n    url: http://{up}/mcp\n    prefix: up.\n"
    );
    let config = Config::parse(&yaml, "test.yaml").unwrap();
    let gateway = Gateway::with_key(config, pep["api_key"].as_str().unwrap().to_owned()).unwrap();
    assert_eq!(gateway.config.resource(), format!("{scheme}://{gw}/mcp"));
    tokio::spawn(gateway.serve_on(gw_listener));
    Env {
        mcp: format!("{scheme}://{gw}/mcp"),
        ..env0
    }
}

/// One JSON-RPC request on 2026-07-28 (stateless, no handshake), as a
/// current client sends it: the request headers name the method and target.
fn modern(env: &Env, token: &str, id: u64, method: &str, params: Value) -> reqwest::RequestBuilder {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let mut req = env
        .http
        .post(&env.mcp)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = params["name"].as_str().or(params["uri"].as_str()) {
        req = req.header("mcp-name", name);
    }
    req.json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
}

/// The JSON-RPC response in a JSON or SSE answer.
async fn response(r: reqwest::Response) -> Value {
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

async fn pending_approval(env: &Env) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pending = env.get("/v1/approvals?state=pending", ADMIN).await;
        if let Some(a) = pending["approvals"].as_array().and_then(|a| a.first()) {
            return a["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no pending approval");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn approver(env: &Env) -> String {
    env.post(
        "/v1/principals",
        ADMIN,
        json!({"id": "carol", "groups": ["approvers"]}),
    )
    .await["api_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn text(r: &CallToolResult) -> String {
    serde_json::to_value(r).unwrap()["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn mcp_error(e: ServiceError) -> McpError {
    match e {
        ServiceError::McpError(e) => e,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_are_listed_decided_and_forwarded() {
    let env = start().await;
    let token = env.token(&env.mcp).await;
    let client = env.client(&token).await;

    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| {
            assert!(t.description.is_some(), "descriptions are kept");
            t.name.to_string()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["up.add", "up.bare", "up.echo"],
        "only reachable tools are listed"
    );

    let echo = CallToolRequestParams::new("up.echo").with_arguments(
        json!({"message": "hi https://example.com/doc"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let r = client.call_tool(echo).await.unwrap();
    assert_eq!(text(&r), "Echo: hi https://example.com/doc");

    for (tool, reason) in [
        ("up.secret_dump", "forbidden"),
        ("up.delete", "not_granted"),
    ] {
        let e = mcp_error(
            client
                .call_tool(CallToolRequestParams::new(tool))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, ErrorCode(bridle_gateway::proxy::DENIED), "{tool}");
        assert_eq!(
            e.data.as_ref().unwrap()["reason"],
            reason,
            "{tool}: {}",
            e.message
        );
        assert!(e.message.contains(reason), "{}", e.message);
    }

    // The outcome and its retrieval reach the audit log.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let audit = env.get("/v1/audit?type=outcome", ADMIN).await;
        let found = audit["events"].as_array().unwrap().iter().any(|e| {
            e["retrievals"]
                .as_array()
                .is_some_and(|r| r.iter().any(|u| u == "https://example.com/doc"))
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no outcome in the audit log: {audit}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_required_call_completes_once_approved() {
    let env = start().await;
    let approver = env
        .post(
            "/v1/principals",
            ADMIN,
            json!({"id": "carol", "groups": ["approvers"]}),
        )
        .await["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = env.token(&env.mcp).await;
    let client = env.client(&token).await;
    let add = CallToolRequestParams::new("up.add")
        .with_arguments(json!({"a": 2, "b": 3}).as_object().unwrap().clone());
    let call = tokio::spawn({
        let peer = client.peer().clone();
        async move { peer.call_tool(add).await }
    });
    // The call is held; an approver approves the pending request.
    let deadline = Instant::now() + Duration::from_secs(15);
    let id = loop {
        let pending = env.get("/v1/approvals?state=pending", ADMIN).await;
        if let Some(a) = pending["approvals"].as_array().and_then(|a| a.first()) {
            break a["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no pending approval");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!call.is_finished(), "the call waits for the approval");
    env.post(&format!("/v1/approvals/{id}/approve"), &approver, json!({}))
        .await;
    let r = call.await.unwrap().unwrap();
    assert_eq!(text(&r), "5");
    let a = env.get(&format!("/v1/approvals/{id}"), ADMIN).await;
    assert_eq!(a["state"], "consumed", "{a}");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_active_tokens_for_this_gateway_get_in() {
    let env = start().await;
    let http = &env.http;
    let r = http.post(&env.mcp).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let gw = env.mcp.trim_end_matches("/mcp");
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{gw}/.well-known/oauth-protected-resource\"")
    );

    let meta: Value = http
        .get(format!("{gw}/.well-known/oauth-protected-resource"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], env.mcp.as_str());
    assert_eq!(meta["authorization_servers"], json!([env.bridle]));

    // A token for the server's own audience is not one for the gateway.
    let other = env.token(&env.bridle).await;
    let r = http
        .post(&env.mcp)
        .bearer_auth(&other)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    // A revoked token is refused.
    let token = env.token(&env.mcp).await;
    let client = env.client(&token).await;
    assert_eq!(client.list_all_tools().await.unwrap().len(), 3);
    let r = http
        .post(format!("{}/oauth/revoke", env.bridle))
        .bearer_auth(ADMIN)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(&env.mcp)
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_not_granted_in_time_names_the_approval() {
    let env = start_waiting("1s").await;
    let token = env.token(&env.mcp).await;
    let client = env.client(&token).await;
    let add = CallToolRequestParams::new("up.add")
        .with_arguments(json!({"a": 1, "b": 1}).as_object().unwrap().clone());
    let e = mcp_error(client.call_tool(add).await.unwrap_err());
    assert_eq!(e.code, ErrorCode(bridle_gateway::proxy::APPROVAL_PENDING));
    let id = e.data.as_ref().unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(e.message.contains(&id), "{}", e.message);
    let a = env.get(&format!("/v1/approvals/{id}"), ADMIN).await;
    assert_eq!(a["state"], "pending", "{a}");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_07_28_result_has_its_result_type_even_from_an_older_upstream() {
    let env = start().await;
    let token = env.token(&env.mcp).await;
    let r = modern(
        &env,
        &token,
        1,
        "tools/call",
        json!({"name": "up.bare", "arguments": {}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v = response(r).await;
    assert_eq!(v["result"]["content"][0]["text"], "bare", "{v}");
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_headers_refuse_an_ungranted_call_before_the_body_is_read() {
    let env = start().await;
    let token = env.token(&env.mcp).await;
    // The body lacks what 2026-07-28 requires of a request (`_meta`); only a
    // refusal on the headers answers it with the decision.
    let r = env
        .http
        .post(&env.mcp)
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "up.secret_dump")
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "up.secret_dump"}}))
        .send()
        .await
        .unwrap();
    let v = response(r).await;
    assert_eq!(v["id"], 7, "{v}");
    assert_eq!(v["error"]["code"], bridle_gateway::proxy::DENIED, "{v}");
    assert_eq!(v["error"]["data"]["reason"], "forbidden", "{v}");
    // The refusal is a decision: it is in the audit log.
    let audit = env.get("/v1/audit?type=decision", ADMIN).await;
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.to_string().contains("up.secret_dump")),
        "{audit}"
    );
    // A granted call with the same headers goes on to be decided and run.
    let r = modern(
        &env,
        &token,
        8,
        "tools/call",
        json!({"name": "up.echo", "arguments": {"message": "hi"}}),
    )
    .send()
    .await
    .unwrap();
    let v = response(r).await;
    assert_eq!(v["result"]["content"][0]["text"], "Echo: hi", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_call_the_agent_abandons_never_runs_and_leaves_its_approval() {
    let env = start().await;
    let approver = approver(&env).await;
    let token = env.token(&env.mcp).await;
    let add = json!({"name": "up.add", "arguments": {"a": 2, "b": 3}});
    // The agent sends the call and goes away while it is held.
    let held = tokio::spawn(modern(&env, &token, 1, "tools/call", add.clone()).send());
    let id = pending_approval(&env).await;
    held.abort();
    let _ = held.await;
    // Approved after the agent left: the abandoned call is not forwarded.
    let deadline = Instant::now() + Duration::from_secs(5);
    env.post(&format!("/v1/approvals/{id}/approve"), &approver, json!({}))
        .await;
    while Instant::now() < deadline {
        let a = env.get(&format!("/v1/approvals/{id}"), ADMIN).await;
        assert_eq!(
            a["state"], "approved",
            "the abandoned call used the approval: {a}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(env.adds.load(Ordering::SeqCst), 0, "the abandoned call ran");
    // The agent's retry runs on that approval, once.
    let r = modern(&env, &token, 2, "tools/call", add)
        .send()
        .await
        .unwrap();
    let v = response(r).await;
    assert_eq!(v["result"]["content"][0]["text"], "5", "{v}");
    assert_eq!(env.adds.load(Ordering::SeqCst), 1);
    let a = env.get(&format!("/v1/approvals/{id}"), ADMIN).await;
    assert_eq!(a["state"], "consumed", "{a}");
}

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

/// `completion/complete` reaches the upstream for a prompt the agent may
/// get, answered in the negotiated revision's shape; for a prompt it may
/// not, it is refused as not granted and never asked upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_is_relayed_only_for_what_the_agent_may_reach() {
    let env = start().await;
    let token = env.token(&env.mcp).await;
    let client = env.client(&token).await;
    let r = client
        .complete(CompleteRequestParams::new(
            Reference::for_prompt("up.greet"),
            ArgumentInfo::new("name", "al"),
        ))
        .await
        .unwrap();
    assert_eq!(r.completion.values, vec!["alice", "alfred"]);
    assert_eq!(env.completions.load(Ordering::SeqCst), 1);

    let e = client
        .complete(CompleteRequestParams::new(
            Reference::for_prompt("up.vault"),
            ArgumentInfo::new("name", ""),
        ))
        .await
        .unwrap_err();
    let ServiceError::McpError(e) = e else {
        panic!("{e:?}")
    };
    assert_eq!(e.code, ErrorCode(-32001), "{e:?}");
    assert!(e.message.contains("up.prompt.vault"), "{}", e.message);
    assert_eq!(
        env.completions.load(Ordering::SeqCst),
        1,
        "an ungranted completion was asked upstream"
    );
    client.cancel().await.unwrap();
}

/// An agent that records the progress notifications it gets.
#[derive(Debug, Clone, Default)]
struct Progress(Arc<std::sync::Mutex<Vec<ProgressNotificationParam>>>);

impl ClientHandler for Progress {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.0.lock().unwrap().push(params);
    }
}

/// Progress an upstream reports during a call reaches the agent that
/// made the call, on the agent's own token; the upstream sees a token of
/// the gateway's client, never the agent's. Upstreams are shared by every
/// agent's session: two sessions that chose the same token (rmcp's client
/// numbers its requests' tokens from 0) each get their own progress, never
/// the other's. (rmcp handles each notification in a task of its own, on
/// the gateway and in the agent, so the order they arrive in is not
/// guaranteed; the gateway drops progress a later one overtook.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_progress_reaches_the_agent_on_its_own_token() {
    let env = start().await;
    let token = env.token(&env.mcp).await;
    // rmcp's client gives every request a progress token of its own.
    let call = || {
        CallToolRequestParams::new("up.echo").with_arguments(
            json!({"message": "with progress"})
                .as_object()
                .unwrap()
                .clone(),
        )
    };
    let (one, two) = (Progress::default(), Progress::default());
    let a = env.client_with(&token, one.clone()).await;
    let b = env.client_with(&token, two.clone()).await;
    let (ra, rb) = tokio::join!(a.call_tool(call()), b.call_tool(call()));
    let upstream_saw: Vec<String> = [ra.unwrap(), rb.unwrap()]
        .iter()
        .map(|r| r.content[0].as_text().unwrap().text.clone())
        .collect();
    assert_ne!(
        upstream_saw[0], upstream_saw[1],
        "one token upstream for two requests"
    );
    assert!(
        upstream_saw.iter().all(|t| !t.ends_with("null")),
        "{upstream_saw:?}"
    );

    // The last step is never stale: it always arrives.
    let last = |seen: &Progress| seen.0.lock().unwrap().iter().any(|p| p.progress == 2.0);
    for seen in [&one, &two] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !last(seen) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Anything relayed twice, or to the other session, has come by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let agents = one.0.lock().unwrap()[0].progress_token.clone();
    assert_eq!(
        two.0.lock().unwrap()[0].progress_token,
        agents,
        "the two sessions' tokens differ: no collision tested"
    );
    for seen in [&one, &two] {
        let mut got = seen.0.lock().unwrap().clone();
        got.sort_by(|a, b| a.progress.total_cmp(&b.progress));
        // Each step at most once: the other session's would double one.
        assert!(
            got.windows(2).all(|w| w[0].progress < w[1].progress),
            "{got:?}"
        );
        assert_eq!(got.last().map(|p| p.progress), Some(2.0), "{got:?}");
        for p in &got {
            assert_eq!(p.progress_token, agents);
            assert_eq!(p.total, Some(2.0));
            assert_eq!(
                p.message.as_deref(),
                Some(format!("upstream step {}", p.progress).as_str())
            );
        }
    }
    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
}
