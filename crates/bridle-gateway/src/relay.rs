//! Traffic from an upstream to the agent besides answers: progress, log
//! messages, sampling and elicitation requests, resource updates and
//! `list_changed`.
//!
//! The invariant: upstream→agent traffic reaches only the agent session
//! that caused it. An upstream connection is shared by every agent's
//! session, and neither stdio nor streamable HTTP tells a client which of
//! its requests a server's notification belongs to. So each agent session
//! that can receive such traffic (a 2025-11-25 or older session, with a
//! stream to the agent) forwards its calls on a link of its own to the
//! upstream, connected at the session's first call and closed with the
//! session: everything that link carries is the session's. On the shared
//! connection (lists, completion, and 2026-07-28 requests, whose agents
//! get no server→client traffic) only progress is relayed, by token
//! ([`crate::upstream`]); log messages are dropped and sampling and
//! elicitation requests refused, since nothing there names one session.
#![expect(
    deprecated,
    reason = "log messages and sampling are still part of the protocol versions clients speak today"
)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use rmcp::model::{
    ClientCapabilities, ClientResult, CreateMessageRequest, CreateMessageRequestParams,
    CreateMessageResult, ElicitRequest, ElicitRequestParams, ElicitResult, ErrorCode,
    GetExtensions as _, Implementation, InitializeRequestParams, LoggingLevel,
    LoggingMessageNotificationParam, ProgressNotificationParam, ProtocolVersion, RequestId,
    ResourceUpdatedNotificationParam, ServerRequest, SetLevelRequestParams,
};
use rmcp::service::{
    InboundStreamOrigin, NotificationContext, OriginatingRequestId, Peer, RequestContext,
    RoleClient, RoleServer, ServiceError,
};
use rmcp::{ClientHandler, ErrorData as McpError};

use crate::bridle::{AgentToken, Bridle};
use crate::listen::Listeners;
use crate::upstream::{Conn, Progress, Running, Upstream};

/// The forwarded requests of one link still waiting for their answer, and
/// the agent request each serves.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    calls: Mutex<Vec<(RequestId, RequestId)>>,
}

impl InFlight {
    pub(crate) fn serving(self: &Arc<Self>, upstream: RequestId, agent: RequestId) -> Serving {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((upstream.clone(), agent));
        }
        Serving {
            calls: self.clone(),
            upstream,
        }
    }

    /// The agent request an upstream request belongs to: the one whose
    /// forwarded request's stream it came on (streamable HTTP), else (stdio,
    /// or a stream of no call: the upstream's standalone stream) the oldest
    /// still running, since all of them are the same session's. None when
    /// no call of the link is running: nothing of the session caused it.
    fn cause(&self, origin: Option<&InboundStreamOrigin>) -> Option<RequestId> {
        let calls = self.calls.lock().ok()?;
        let named = match origin {
            Some(InboundStreamOrigin::OutboundRequest(id)) => calls.iter().find(|(up, _)| up == id),
            _ => None,
        };
        named.or(calls.first()).map(|(_, agent)| agent.clone())
    }
}

/// A forwarded request's entry in [`InFlight`], removed when dropped.
#[derive(Debug)]
pub(crate) struct Serving {
    calls: Arc<InFlight>,
    upstream: RequestId,
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Ok(mut calls) = self.calls.calls.lock() {
            calls.retain(|(up, _)| up != &self.upstream);
        }
    }
}

/// Every agent session that can be notified, for what the shared
/// connection relays to all of them.
#[derive(Debug, Default)]
pub struct Sessions {
    all: Mutex<Vec<Weak<Route>>>,
    /// The open `subscriptions/listen` streams.
    pub(crate) listeners: Listeners,
    /// What re-decides a resource update for a stream (none: no update
    /// is relayed).
    pub(crate) bridle: OnceLock<Bridle>,
}

impl Sessions {
    fn register(&self, route: &Arc<Route>) {
        if let Ok(mut all) = self.all.lock() {
            all.retain(|r| r.strong_count() > 0);
            all.push(Arc::downgrade(route));
        }
    }

    fn live(&self) -> Vec<Arc<Route>> {
        self.all
            .lock()
            .map(|all| all.iter().filter_map(Weak::upgrade).collect())
            .unwrap_or_default()
    }
}

/// Where one agent session's upstream traffic goes, and what it asked for.
#[derive(Debug, Default)]
pub(crate) struct Route {
    peer: OnceLock<Peer<RoleServer>>,
    /// The session's agent, with the token of its latest request.
    agent: Mutex<Option<AgentToken>>,
    level: Mutex<Option<LoggingLevel>>,
    /// Subscribed URIs, and the upstream each was subscribed on.
    pub(crate) subscriptions: Mutex<HashMap<String, String>>,
    /// Upstreams the session has a link to.
    linked: Mutex<HashSet<String>>,
}

impl Route {
    pub(crate) fn agent(&self) -> Option<AgentToken> {
        self.agent.lock().ok().and_then(|a| a.clone())
    }

    fn peer(&self) -> Option<&Peer<RoleServer>> {
        self.peer.get()
    }

    pub(crate) fn subscribed(&self, uri: &str, upstream: &str) -> bool {
        self.subscriptions
            .lock()
            .is_ok_and(|s| s.get(uri).is_some_and(|u| u == upstream))
    }
}

/// A session's own connection to one upstream.
#[derive(Debug)]
struct Link {
    running: Running,
    progress: Arc<Progress>,
    calls: Arc<InFlight>,
}

/// One agent session: its route and its links, which close with it.
#[derive(Debug, Default)]
pub(crate) struct Session {
    pub(crate) route: Arc<Route>,
    links: tokio::sync::Mutex<HashMap<String, Link>>,
}

/// Whether the session of `ctx` can receive upstream→agent traffic: it
/// has a stream to the agent (a session, not a single 2026-07-28 request)
/// and a revision that still has server→client requests.
fn relays(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.peer.peer_info().is_some()
        && ctx
            .protocol_version()
            .is_some_and(|v| v < ProtocolVersion::V_2026_07_28)
}

impl Session {
    /// Bind the session to the agent of its first request; a request with
    /// another agent's token is refused (a session is one agent's).
    pub(crate) fn bind(
        &self,
        ctx: &RequestContext<RoleServer>,
        agent: &AgentToken,
        sessions: &Sessions,
    ) -> Result<(), McpError> {
        let Ok(mut bound) = self.route.agent.lock() else {
            return Err(McpError::internal_error("session state unavailable", None));
        };
        if bound.as_ref().is_some_and(|b| b.agent != agent.agent) {
            return Err(McpError::invalid_request(
                "this session belongs to another agent",
                None,
            ));
        }
        *bound = Some(agent.clone());
        drop(bound);
        if relays(ctx) && self.route.peer.set(ctx.peer.clone()).is_ok() {
            sessions.register(&self.route);
        }
        Ok(())
    }

    /// The connection a request of `ctx` to `upstream` goes on: the
    /// session's link (connected now if it has none, or lost it), or the
    /// shared connection for a request whose agent gets no upstream
    /// traffic.
    pub(crate) async fn conn(
        &self,
        upstream: &Upstream,
        ctx: &RequestContext<RoleServer>,
        bridle: &Bridle,
    ) -> Result<Conn, McpError> {
        if !relays(ctx) {
            return upstream.shared().await;
        }
        let mut links = self.links.lock().await;
        if let Some(link) = links.get(&upstream.name)
            && !link.running.is_closed()
        {
            return Ok(link.conn());
        }
        let progress = Arc::new(Progress::default());
        let calls = Arc::new(InFlight::default());
        let client = Client {
            progress: progress.clone(),
            kind: Kind::Link(Box::new(LinkOf {
                route: Arc::downgrade(&self.route),
                calls: calls.clone(),
                upstream: upstream.name.clone(),
                prefix: upstream.prefix.clone(),
                bridle: bridle.clone(),
                capabilities: ctx
                    .peer
                    .peer_info()
                    .map(|i| i.capabilities.clone())
                    .unwrap_or_default(),
                version: ctx.protocol_version(),
                timeout: upstream.timeout(),
            })),
        };
        let running = upstream.connect_link(client).await?;
        tracing::debug!(upstream = %upstream.name, "session link connected");
        let level = self.route.level.lock().ok().and_then(|l| *l);
        if let Some(level) = level {
            let set = |p: Peer<RoleClient>| async move {
                p.set_level(SetLevelRequestParams::new(level)).await
            };
            if let Err(e) = upstream.run(running.peer().clone(), set).await {
                tracing::debug!(upstream = %upstream.name, error = %e.message, "logging level not set on a link");
            }
        }
        let link = Link {
            running,
            progress,
            calls,
        };
        let conn = link.conn();
        links.insert(upstream.name.clone(), link);
        if let Ok(mut linked) = self.route.linked.lock() {
            linked.insert(upstream.name.clone());
        }
        Ok(conn)
    }

    /// The session's link to `upstream`, if it has one.
    pub(crate) async fn link(&self, upstream: &str) -> Option<Conn> {
        let links = self.links.lock().await;
        links
            .get(upstream)
            .filter(|l| !l.running.is_closed())
            .map(Link::conn)
    }

    /// `logging/setLevel`: kept for links connected later, and sent on
    /// the links the session has.
    pub(crate) async fn set_level(&self, level: LoggingLevel, upstreams: &[Arc<Upstream>]) {
        if let Ok(mut l) = self.route.level.lock() {
            *l = Some(level);
        }
        for u in upstreams {
            let Some(conn) = self.link(&u.name).await else {
                continue;
            };
            let set = |p: Peer<RoleClient>| async move {
                p.set_level(SetLevelRequestParams::new(level)).await
            };
            if let Err(e) = u.run(conn.peer, set).await {
                tracing::debug!(upstream = %u.name, error = %e.message, "logging/setLevel not forwarded");
            }
        }
    }
}

impl Link {
    fn conn(&self) -> Conn {
        Conn {
            peer: self.running.peer().clone(),
            progress: self.progress.clone(),
            calls: Some(self.calls.clone()),
        }
    }
}

/// The gateway as an upstream's MCP client, on the shared connection or
/// on one session's link.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    progress: Arc<Progress>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// `upstream`, `prefix`: its name, for the sessions that hear it on a
    /// link, and its prefix, for the decisions of updates.
    Shared {
        sessions: Arc<Sessions>,
        upstream: String,
        prefix: String,
    },
    Link(Box<LinkOf>),
}

/// What a link's client knows of its session.
#[derive(Debug, Clone)]
pub(crate) struct LinkOf {
    route: Weak<Route>,
    calls: Arc<InFlight>,
    pub(crate) upstream: String,
    pub(crate) prefix: String,
    pub(crate) bridle: Bridle,
    /// The agent's, so the upstream asks only for what the agent can do,
    /// in the revision the agent speaks.
    capabilities: ClientCapabilities,
    version: Option<ProtocolVersion>,
    /// How long the agent has to answer: the forwarded call waits no
    /// longer.
    timeout: Duration,
}

/// An upstream request the gateway does not pass on.
fn refused(why: &str) -> McpError {
    McpError::new(ErrorCode::INVALID_REQUEST, why.to_owned(), None)
}

fn not_advertised(what: &str) -> McpError {
    McpError::new(
        ErrorCode::METHOD_NOT_FOUND,
        format!("the agent's client does not support {what}"),
        None,
    )
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Changed {
    Tools,
    Prompts,
    Resources,
}

async fn notify_changed(peer: &Peer<RoleServer>, what: Changed) {
    let sent = match what {
        Changed::Tools => peer.notify_tool_list_changed().await,
        Changed::Prompts => peer.notify_prompt_list_changed().await,
        Changed::Resources => peer.notify_resource_list_changed().await,
    };
    if let Err(e) = sent {
        tracing::debug!(error = %e, "list_changed not delivered");
    }
}

impl Client {
    pub(crate) fn shared(
        progress: Arc<Progress>,
        sessions: Arc<Sessions>,
        upstream: String,
        prefix: String,
    ) -> Self {
        Self {
            progress,
            kind: Kind::Shared {
                sessions,
                upstream,
                prefix,
            },
        }
    }

    /// The agent session and agent request an upstream request belongs
    /// to, or why it is refused: on the shared connection nothing says
    /// which session caused it; on a link, no call of the session runs
    /// (or it came on the stream of none).
    fn attribute(
        &self,
        ctx: &RequestContext<RoleClient>,
    ) -> Result<(Peer<RoleServer>, RequestId, Duration), McpError> {
        let Kind::Link(link) = &self.kind else {
            return Err(refused(
                "the gateway cannot tell which agent session this request is for",
            ));
        };
        let route = link
            .route
            .upgrade()
            .ok_or_else(|| refused("the agent session ended"))?;
        let peer = route
            .peer()
            .cloned()
            .ok_or_else(|| refused("the agent session has no stream for requests"))?;
        let cause = link
            .calls
            .cause(ctx.extensions.get::<InboundStreamOrigin>())
            .ok_or_else(|| refused("no call of the agent session is running"))?;
        Ok((peer, cause, link.timeout))
    }

    fn capabilities(&self) -> Option<&ClientCapabilities> {
        match &self.kind {
            Kind::Link(link) => Some(&link.capabilities),
            Kind::Shared { .. } => None,
        }
    }

    async fn changed(&self, what: Changed) {
        match &self.kind {
            Kind::Link(link) => {
                if let Some(peer) = link.route.upgrade().as_deref().and_then(Route::peer) {
                    notify_changed(peer, what).await;
                }
            }
            // Sessions with a link hear it there.
            Kind::Shared {
                sessions, upstream, ..
            } => {
                sessions.listeners.changed(what).await;
                for route in sessions.live() {
                    let linked = route.linked.lock().is_ok_and(|l| l.contains(upstream));
                    if let (false, Some(peer)) = (linked, route.peer()) {
                        notify_changed(peer, what).await;
                    }
                }
            }
        }
    }
}

/// Ask the agent `request` as part of its request `cause` (on that
/// request's stream), and return its answer.
async fn ask(
    (peer, cause, timeout): (Peer<RoleServer>, RequestId, Duration),
    mut request: ServerRequest,
) -> Result<ClientResult, McpError> {
    request.extensions_mut().insert(OriginatingRequestId(cause));
    let Ok(answer) = tokio::time::timeout(timeout, peer.send_request(request)).await else {
        return Err(McpError::internal_error(
            "the agent did not answer in time",
            None,
        ));
    };
    match answer {
        Ok(r) => Ok(r),
        Err(ServiceError::McpError(e)) => Err(e),
        Err(e) => {
            tracing::debug!(error = %e, "request to the agent failed");
            Err(McpError::internal_error(
                "the agent did not answer the request",
                None,
            ))
        }
    }
}

fn unexpected() -> McpError {
    McpError::internal_error("the agent answered with an unexpected result", None)
}

impl ClientHandler for Client {
    fn get_info(&self) -> InitializeRequestParams {
        let mut caps = ClientCapabilities::default();
        if let Some(agent) = self.capabilities() {
            caps.sampling = agent.sampling.clone();
            caps.elicitation = agent.elicitation.clone();
        }
        let mut info = InitializeRequestParams::new(
            caps,
            Implementation::new("bridle-gateway", env!("CARGO_PKG_VERSION")),
        );
        if let Kind::Link(link) = &self.kind
            && let Some(v) = &link.version
        {
            info.protocol_version = v.clone();
        }
        info
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.progress.progress(params).await;
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        let Kind::Link(link) = &self.kind else {
            return;
        };
        let Some(route) = link.route.upgrade() else {
            return;
        };
        if let Some(peer) = route.peer()
            && let Err(e) = peer.notify_logging_message(params).await
        {
            tracing::debug!(error = %e, "log message not delivered");
        }
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        ctx: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        let to = self.attribute(&ctx)?;
        if self
            .capabilities()
            .and_then(|c| c.sampling.as_ref())
            .is_none()
        {
            return Err(not_advertised("sampling"));
        }
        let request = ServerRequest::CreateMessageRequest(CreateMessageRequest::new(params));
        match ask(to, request).await? {
            ClientResult::CreateMessageResult(r) => Ok(*r),
            _ => Err(unexpected()),
        }
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        ctx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        let to = self.attribute(&ctx)?;
        let elicitation = self.capabilities().and_then(|c| c.elicitation.as_ref());
        let supported = match (&params, elicitation) {
            (_, None) => false,
            // An empty capability is form mode only.
            (ElicitRequestParams::FormElicitationParams { .. }, Some(e)) => {
                e.form.is_some() || e.url.is_none()
            }
            (ElicitRequestParams::UrlElicitationParams { .. }, Some(e)) => e.url.is_some(),
            // A mode this gateway does not know: not passed on.
            (_, Some(_)) => false,
        };
        if !supported {
            return Err(not_advertised("this mode of elicitation"));
        }
        let request = ServerRequest::ElicitRequest(ElicitRequest::new(params));
        match ask(to, request).await? {
            ClientResult::ElicitResult(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        ctx: NotificationContext<RoleClient>,
    ) {
        let link = match &self.kind {
            Kind::Link(link) => link,
            Kind::Shared {
                sessions,
                upstream,
                prefix,
            } => {
                if let Some(bridle) = sessions.bridle.get() {
                    let uri = &params.uri;
                    sessions
                        .listeners
                        .updated(bridle, upstream, prefix, uri)
                        .await;
                }
                return;
            }
        };
        let Some(route) = link.route.upgrade() else {
            return;
        };
        let Some(peer) = route.peer().cloned() else {
            return;
        };
        crate::subscriptions::updated(link, &route, &peer, &ctx.peer, params).await;
    }

    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.changed(Changed::Tools).await;
    }

    async fn on_prompt_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.changed(Changed::Prompts).await;
    }

    async fn on_resource_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.changed(Changed::Resources).await;
    }
}
