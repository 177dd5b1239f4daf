//! The world each gateway test runs in: the real server on a temp SQLite
//! file, a small rmcp upstream over streamable HTTP, the gateway in front
//! of it, the test's client, and the helpers the tests share.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bridle_gateway::{Config, Gateway};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    CompletionInfo, ContentBlock, InitializeResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Reference, Resource, ResourceContents,
    ServerCapabilities, SubscribeRequestParams, Tool, UnsubscribeRequestParams,
};
use rmcp::service::{Peer, RequestContext, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{
    StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
};
use rmcp::{
    ClientHandler, ErrorData as McpError, RoleClient, RoleServer, ServerHandler, ServiceExt,
};
use serde_json::{Value, json};

pub(crate) use super::raw::*;
use super::traffic::{chatty, late, touch};

pub(crate) const ADMIN: &str = "bk_gateway-test-admin-0123456789";

pub(crate) const RECORD: &str = r#"
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
  - name: up.chatty
  - name: up.touch
  - name: up.change
  - name: up.late
  - name: up.resources.read
    access: read
data:
  - { resource: "up://docs/public", access: [read] }
forbid: [up.secret_*]
"#;

/// The upstream: `echo`, `add`, `bare`, `secret_dump` and `delete` tools,
/// and completion of the `name` argument of its prompts. It counts the
/// `add` calls it runs and the completions it answers (the side effects a
/// test observes).
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub(crate) adds: Arc<AtomicUsize>,
    pub(crate) completions: Arc<AtomicUsize>,
    /// `echo` of "slow": started, and stopped by a cancellation.
    pub(crate) slow: Arc<(AtomicUsize, AtomicUsize)>,
    /// Every session's subscriptions (URI, the session's peer), shared
    /// by the upstream's sessions: `touch` notifies them.
    pub(crate) subscribers: Subscribers,
    /// What became of the elicitation `late` sent after its call.
    pub(crate) late: Late,
    /// Which of the upstream's sessions this is.
    pub(crate) session: usize,
}

pub(crate) type Late = Arc<std::sync::Mutex<Option<String>>>;

/// (URI, upstream session, its peer).
pub(crate) type Subscribers = Arc<std::sync::Mutex<Vec<(String, usize, Peer<RoleServer>)>>>;

pub(crate) fn schema(props: Value) -> serde_json::Map<String, Value> {
    json!({"type": "object", "properties": props})
        .as_object()
        .unwrap()
        .clone()
}

impl ServerHandler for Upstream {
    fn get_info(&self) -> InitializeResult {
        #[expect(deprecated, reason = "logging is what 2025-11-25 servers send")]
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_completions()
            .enable_logging()
            .enable_resources()
            .enable_resources_subscribe()
            .build();
        InitializeResult::new(caps)
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new("up://docs/public", "public"),
            Resource::new("up://docs/secret", "secret"),
        ]))
    }

    async fn read_resource(
        &self,
        req: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        Ok(ReadResourceResponse::Complete(ReadResourceResult::new(
            vec![ResourceContents::text(
                format!("the text of {}", req.uri),
                req.uri,
            )],
        )))
    }

    async fn subscribe(
        &self,
        req: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscribers
            .lock()
            .unwrap()
            .push((req.uri, self.session, ctx.peer));
        Ok(())
    }

    async fn unsubscribe(
        &self,
        req: UnsubscribeRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscribers
            .lock()
            .unwrap()
            .retain(|(uri, session, _)| !(*uri == req.uri && *session == self.session));
        Ok(())
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
            Tool::new(
                "chatty",
                "Logs, then asks who you are",
                schema(json!({"who": {"type": "string"}})),
            ),
            Tool::new("change", "Changes the tool list", schema(json!({}))),
            Tool::new("late", "Asks after answering", schema(json!({}))),
            Tool::new(
                "touch",
                "Updates a resource",
                schema(json!({"uri": {"type": "string"}})),
            ),
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
            // Runs until cancelled, or for 10 s.
            "echo" if args["message"] == "slow" => {
                self.slow.0.fetch_add(1, Ordering::SeqCst);
                tokio::select! {
                    () = ctx.ct.cancelled() => {
                        self.slow.1.fetch_add(1, Ordering::SeqCst);
                        "cancelled".to_owned()
                    }
                    () = tokio::time::sleep(Duration::from_secs(10)) => "slow".to_owned(),
                }
            }
            "echo" if args["message"] == "with progress" => {
                let token = ctx.meta.get_progress_token();
                report_progress(&ctx).await;
                format!("Echo: progress token {}", json!(token))
            }
            "echo" => format!("Echo: {}", args["message"].as_str().unwrap_or_default()),
            "chatty" => chatty(args["who"].as_str().unwrap_or_default(), &ctx).await,
            // Elicitation once the call has been answered: caused by no
            // running call.
            "late" => {
                late(ctx.peer.clone(), self.late.clone());
                "later".to_owned()
            }
            // This session's tool list changed.
            "change" => {
                ctx.peer.notify_tool_list_changed().await.unwrap();
                "changed".to_owned()
            }
            // Tell every session subscribed to `uri` that it changed.
            "touch" => touch(&self.subscribers, args["uri"].as_str().unwrap_or_default()).await,
            "add" => {
                // 40 + b: with progress (a held call's test).
                if args["a"] == 40 {
                    report_progress(&ctx).await;
                }
                format!(
                    "{}",
                    args["a"].as_f64().unwrap_or(0.0) + args["b"].as_f64().unwrap_or(0.0)
                )
            }
            other => format!("ran {other}"),
        };
        Ok(CallToolResponse::Complete(CallToolResult::success(vec![
            ContentBlock::text(text),
        ])))
    }
}

/// Progress 0, 1 and 2 of 2 on the request's token ("upstream step N"),
/// for an agent that asked for it, then a little more work: progress sent
/// in the instant before an answer can be overtaken by it (rmcp handles
/// each notification in a task of its own).
async fn report_progress(ctx: &RequestContext<RoleServer>) {
    let Some(t) = ctx.meta.get_progress_token() else {
        return;
    };
    for i in 0..=2 {
        let p = ProgressNotificationParam::new(t.clone(), f64::from(i))
            .with_total(2.0)
            .with_message(format!("upstream step {i}"));
        ctx.peer.notify_progress(p).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

pub(crate) struct Env {
    pub(crate) bridle: String,
    pub(crate) mcp: String,
    pub(crate) http: reqwest::Client,
    pub(crate) adds: Arc<AtomicUsize>,
    pub(crate) completions: Arc<AtomicUsize>,
    pub(crate) slow: Arc<(AtomicUsize, AtomicUsize)>,
    pub(crate) subscribers: Subscribers,
    pub(crate) late: Late,
    pub(crate) _dir: tempfile::TempDir,
}

impl Env {
    pub(crate) async fn post(&self, path: &str, key: &str, body: Value) -> Value {
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

    pub(crate) async fn get(&self, path: &str, key: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.bridle))
            .bearer_auth(key);
        r.send().await.unwrap().json().await.unwrap()
    }

    /// An access token of `mcp-bot` for `resource`.
    pub(crate) async fn token(&self, resource: &str) -> String {
        self.token_of("mcp-bot", resource).await
    }

    /// Another agent with `mcp-bot`'s record.
    pub(crate) async fn another_agent(&self, name: &str) {
        let r = self
            .http
            .put(format!("{}/v1/agents/{name}", self.bridle))
            .bearer_auth(ADMIN)
            .header("content-type", "application/yaml")
            .body(RECORD.replace("agent: mcp-bot", &format!("agent: {name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }

    /// An access token of `agent` for `resource`.
    pub(crate) async fn token_of(&self, agent: &str, resource: &str) -> String {
        let cred = self
            .post(&format!("/v1/agents/{agent}/credentials"), ADMIN, json!({}))
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

    pub(crate) async fn client(&self, token: &str) -> RunningService<RoleClient, ()> {
        self.client_with(token, ()).await
    }

    pub(crate) async fn client_with<H: ClientHandler>(
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

pub(crate) async fn serve(router: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

pub(crate) async fn start() -> Env {
    start_waiting("20s").await
}

pub(crate) async fn start_waiting(approval_wait: &str) -> Env {
    start_with(approval_wait, None).await
}

/// A CA made for one test, and certificates it signed for `127.0.0.1`.
pub(crate) struct TestCa {
    pub(crate) pem: String,
    pub(crate) issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub(crate) fn new() -> Self {
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
    pub(crate) fn issue(
        &self,
        dir: &std::path::Path,
        name: &str,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
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
pub(crate) async fn start_with(approval_wait: &str, ca: Option<&TestCa>) -> Env {
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
    let slow = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let up_slow = slow.clone();
    let subscribers = Subscribers::default();
    let up_subscribers = subscribers.clone();
    let late = Late::default();
    let up_late = late.clone();
    let sessions = AtomicUsize::new(0);
    let upstream = StreamableHttpService::new(
        move || {
            Ok(Upstream {
                session: sessions.fetch_add(1, Ordering::SeqCst),
                adds: up_adds.clone(),
                completions: up_completions.clone(),
                slow: up_slow.clone(),
                subscribers: up_subscribers.clone(),
                late: up_late.clone(),
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
        slow,
        subscribers,
        late,
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

pub(crate) async fn pending_approval(env: &Env) -> String {
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

pub(crate) async fn approver(env: &Env) -> String {
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

pub(crate) fn text(r: &CallToolResult) -> String {
    serde_json::to_value(r).unwrap()["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn mcp_error(e: ServiceError) -> McpError {
    match e {
        ServiceError::McpError(e) => e,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}
