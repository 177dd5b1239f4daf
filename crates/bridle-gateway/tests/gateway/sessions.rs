//! Upstream→agent traffic reaches only the agent session that caused it:
//! log messages and elicitation during a call, and resource updates of a
//! subscription. Two agents are connected at once in each test.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[expect(deprecated, reason = "logging is what 2025-11-25 servers send")]
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ElicitRequestParams, ElicitResult,
    ElicitationAction, ElicitationCapability, ErrorCode, Implementation, InitializeRequestParams,
    LoggingMessageNotificationParam, ReadResourceRequestParams, ResourceUpdatedNotificationParam,
    SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::{ClientHandler, ErrorData as McpError, RoleClient};
use serde_json::{Value, json};

use super::harness::*;

/// An agent that records what the gateway relays to it and answers
/// elicitation with its name.
#[derive(Debug, Clone, Default)]
struct Agent {
    name: String,
    logs: Arc<Mutex<Vec<Value>>>,
    asked: Arc<Mutex<Vec<String>>>,
    updates: Arc<Mutex<Vec<String>>>,
    tools_changed: Arc<Mutex<usize>>,
}

impl Agent {
    fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    fn heard(&self) -> usize {
        self.logs.lock().unwrap().len()
            + self.asked.lock().unwrap().len()
            + self.updates.lock().unwrap().len()
            + *self.tools_changed.lock().unwrap()
    }
}

impl ClientHandler for Agent {
    fn get_info(&self) -> InitializeRequestParams {
        let mut caps = ClientCapabilities::default();
        caps.elicitation = Some(ElicitationCapability::new());
        InitializeRequestParams::new(caps, Implementation::new(self.name.clone(), "1"))
    }

    #[expect(deprecated, reason = "logging is what 2025-11-25 servers send")]
    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.logs.lock().unwrap().push(params.data);
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        let ElicitRequestParams::FormElicitationParams { message, .. } = params else {
            return Ok(ElicitResult::new(ElicitationAction::Decline));
        };
        self.asked.lock().unwrap().push(message);
        Ok(ElicitResult::new(ElicitationAction::Accept).with_content(json!({"name": self.name})))
    }

    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        *self.tools_changed.lock().unwrap() += 1;
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.updates.lock().unwrap().push(params.uri);
    }
}

fn call(tool: &str, args: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(tool.to_owned()).with_arguments(args.as_object().unwrap().clone())
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Agents `mcp-bot` (A) and `other-bot` (B), each connected with an
/// [`Agent`]; B has called the upstream already, so it has a link too.
async fn two_agents(
    env: &Env,
) -> (
    (Agent, RunningService<RoleClient, Agent>),
    (Agent, RunningService<RoleClient, Agent>),
) {
    env.another_agent("other-bot").await;
    let (a, b) = (Agent::named("agent-a"), Agent::named("agent-b"));
    let token_a = env.token(&env.mcp).await;
    let token_b = env.token_of("other-bot", &env.mcp).await;
    let client_a = env.client_with(&token_a, a.clone()).await;
    let client_b = env.client_with(&token_b, b.clone()).await;
    let r = client_b
        .call_tool(call("up.echo", json!({"message": "hi"})))
        .await
        .unwrap();
    assert_eq!(text(&r), "Echo: hi");
    ((a, client_a), (b, client_b))
}

/// A's call logs and asks A who it is: the log message and the
/// elicitation reach A, A's answer reaches the upstream (it is the call's
/// result), and B, connected all the while, hears nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_log_message_and_elicitation_reach_only_its_session() {
    let env = start().await;
    let ((a, client_a), (b, client_b)) = two_agents(&env).await;
    let r = client_a
        .call_tool(call("up.chatty", json!({"who": "A"})))
        .await
        .unwrap();
    assert_eq!(text(&r), r#"elicited: "accept" {"name":"agent-a"}"#);
    assert_eq!(*a.asked.lock().unwrap(), vec!["who are you, A?"]);
    until("A's log message", || !a.logs.lock().unwrap().is_empty()).await;
    assert_eq!(*a.logs.lock().unwrap(), vec![json!("working for A")]);
    // Anything relayed to the wrong session has come by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.heard(), 0, "B heard A's traffic: {b:?}");

    // And the other way round, at the same time.
    let (ra, rb) = tokio::join!(
        client_a.call_tool(call("up.chatty", json!({"who": "A again"}))),
        client_b.call_tool(call("up.chatty", json!({"who": "B"}))),
    );
    assert_eq!(
        text(&ra.unwrap()),
        r#"elicited: "accept" {"name":"agent-a"}"#
    );
    assert_eq!(
        text(&rb.unwrap()),
        r#"elicited: "accept" {"name":"agent-b"}"#
    );
    assert_eq!(
        *a.asked.lock().unwrap(),
        vec!["who are you, A?", "who are you, A again?"]
    );
    assert_eq!(*b.asked.lock().unwrap(), vec!["who are you, B?"]);
    until("B's log message", || !b.logs.lock().unwrap().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*b.logs.lock().unwrap(), vec![json!("working for B")]);
    assert_eq!(a.logs.lock().unwrap().len(), 2, "{a:?}");
    client_a.cancel().await.unwrap();
    client_b.cancel().await.unwrap();
}

/// An agent whose client did not advertise elicitation is never asked:
/// the upstream's request is refused with an MCP error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elicitation_is_refused_for_an_agent_that_cannot_answer_it() {
    let env = start().await;
    let token = env.token(&env.mcp).await;
    let client = env.client(&token).await;
    let r = client
        .call_tool(call("up.chatty", json!({"who": "nobody"})))
        .await
        .unwrap();
    assert_eq!(
        text(&r),
        "elicitation refused: the agent's client does not support this mode of elicitation"
    );
    client.cancel().await.unwrap();
}

/// A subscription is decided like a read of its URI: outside the agent's
/// data scope it is refused with the error a read gets, and never made
/// upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_outside_the_data_scope_is_refused_like_a_read() {
    let env = start().await;
    let token = env.token(&env.mcp).await;
    let client = env.client(&token).await;
    let secret = "up://docs/secret";
    #[expect(deprecated, reason = "resources/subscribe is the 2025-11-25 way")]
    let subscribed = client
        .subscribe(SubscribeRequestParams::new(secret))
        .await
        .map(|_| ());
    let refused = mcp_error(subscribed.unwrap_err());
    let read = client
        .read_resource(ReadResourceRequestParams::new(secret))
        .await;
    let read = mcp_error(read.unwrap_err());
    assert_eq!(refused.code, ErrorCode(-32001), "{refused:?}");
    assert_eq!(refused.code, read.code);
    assert_eq!(
        refused.data.as_ref().map(|d| &d["reason"]),
        read.data.as_ref().map(|d| &d["reason"]),
        "{refused:?} / {read:?}"
    );
    assert!(env.subscribers.lock().unwrap().is_empty());
    client.cancel().await.unwrap();
}

/// An update of a subscribed URI reaches the session that subscribed, not
/// another agent's (which may read the URI too), and none after the
/// subscription ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_reaches_only_the_subscriber() {
    let env = start().await;
    let ((a, client_a), (b, client_b)) = two_agents(&env).await;
    let public = "up://docs/public";
    #[expect(deprecated, reason = "resources/subscribe is the 2025-11-25 way")]
    client_a
        .subscribe(SubscribeRequestParams::new(public))
        .await
        .unwrap();
    let touch = || call("up.touch", json!({"uri": public}));
    let r = client_b.call_tool(touch()).await.unwrap();
    assert_eq!(text(&r), "touched 1 subscribers");
    until("A's update", || !a.updates.lock().unwrap().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*a.updates.lock().unwrap(), vec![public]);
    assert_eq!(b.heard(), 0, "B heard A's update: {b:?}");

    #[expect(deprecated, reason = "resources/unsubscribe is the 2025-11-25 way")]
    client_a
        .unsubscribe(UnsubscribeRequestParams::new(public))
        .await
        .unwrap();
    let r = client_b.call_tool(touch()).await.unwrap();
    assert_eq!(text(&r), "touched 0 subscribers");
    client_a.cancel().await.unwrap();
    client_b.cancel().await.unwrap();
}

/// A `list_changed` an upstream sends a session's link reaches that
/// session, and not another agent's connected to the same upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_changed_reaches_the_session_the_upstream_told() {
    let env = start().await;
    let ((a, client_a), (b, client_b)) = two_agents(&env).await;
    let r = client_a
        .call_tool(call("up.change", json!({})))
        .await
        .unwrap();
    assert_eq!(text(&r), "changed");
    until("A's list_changed", || *a.tools_changed.lock().unwrap() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*a.tools_changed.lock().unwrap(), 1);
    assert_eq!(b.heard(), 0, "B heard A's list_changed: {b:?}");
    client_a.cancel().await.unwrap();
    client_b.cancel().await.unwrap();
}

/// An elicitation the upstream sends once the call that could have caused
/// it has been answered is attributed to nothing: refused to the upstream,
/// and no agent is asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elicitation_no_running_call_caused_is_refused() {
    let env = start().await;
    let ((a, client_a), (b, client_b)) = two_agents(&env).await;
    let r = client_a
        .call_tool(call("up.late", json!({})))
        .await
        .unwrap();
    assert_eq!(text(&r), "later");
    until("the late elicitation's fate", || {
        env.late.lock().unwrap().is_some()
    })
    .await;
    assert_eq!(
        env.late.lock().unwrap().as_deref(),
        Some("refused: no call of the agent session is running")
    );
    assert_eq!(a.heard() + b.heard(), 0, "{a:?} {b:?}");
    client_a.cancel().await.unwrap();
    client_b.cancel().await.unwrap();
}

/// A 2026-07-28 client listening to a URI (`subscriptions/listen`): each
/// update of it reaches its stream, not a session that did not ask; a
/// URI outside the data scope ends the stream with the error a read gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_stream_gets_the_updates_of_its_uris_only_if_it_may_read_them() {
    use rmcp::model::{ProtocolVersion, ServerNotification, SubscriptionFilter};
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use rmcp::{ClientLifecycleMode, ClientServiceExt as _};

    let env = start().await;
    let ((a, client_a), (b, client_b)) = two_agents(&env).await;
    let token = env.token(&env.mcp).await;
    let modern = || {
        let config =
            StreamableHttpClientTransportConfig::with_uri(env.mcp.as_str()).auth_header(&token);
        ().serve_with_lifecycle(
            StreamableHttpClientTransport::with_client(env.http.clone(), config),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
    };
    let listener = modern().await.unwrap();
    let filter = |uri: &str| {
        SubscriptionFilter::builder()
            .resource_subscription(uri)
            .build()
    };
    let mut stream = listener
        .peer()
        .listen(filter("up://docs/public"))
        .await
        .unwrap();
    let r = client_b
        .call_tool(call("up.touch", json!({"uri": "up://docs/public"})))
        .await
        .unwrap();
    assert_eq!(text(&r), "touched 1 subscribers");
    let got = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("no update on the stream")
        .unwrap();
    let Some(ServerNotification::ResourceUpdatedNotification(n)) = got else {
        panic!("{got:?}")
    };
    assert_eq!(n.params.uri, "up://docs/public");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(a.heard() + b.heard(), 0, "{a:?} {b:?}");

    let refused = match listener.peer().listen(filter("up://docs/secret")).await {
        Err(e) => mcp_error(e),
        Ok(mut s) => mcp_error(
            tokio::time::timeout(Duration::from_secs(5), s.next())
                .await
                .expect("the stream was not ended")
                .unwrap_err(),
        ),
    };
    assert_eq!(refused.code, ErrorCode(-32001), "{refused:?}");
    drop(stream);
    client_a.cancel().await.unwrap();
    client_b.cancel().await.unwrap();
}
