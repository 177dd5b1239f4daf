//! Connections to upstream MCP servers. Each upstream has a supervisor task
//! that connects, publishes the live client, and on loss (a stdio server
//! that exits, an HTTP server that goes away) reconnects with exponential
//! backoff. Callers never wait longer than the call timeout for it.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolResponse, CancelledNotificationParam, ClientRequest, ErrorCode,
    ProgressNotificationParam, ProgressToken, RequestId, ServerResult,
};
use rmcp::service::{Peer, PeerRequestOptions, RoleClient, RoleServer, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ErrorData as McpError, ServiceExt};
use tokio::sync::watch;

use crate::config::{Transport, UpstreamConfig};
use crate::relay::{Client, InFlight, Sessions};

/// Why an upstream cannot be started or reached.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("`command` is empty")]
    EmptyCommand,
    #[error("give exactly one of `command` (stdio) or `url` (streamable HTTP)")]
    Transport,
    #[error(
        "upstream `{upstream}`: environment variable `{var}` (for header `{header}`) is not set"
    )]
    MissingEnv {
        upstream: String,
        var: String,
        header: String,
    },
    #[error("upstream `{upstream}`: `{header}` is not a header name")]
    HeaderName { upstream: String, header: String },
    #[error("upstream `{upstream}`: the value of `{var}` is not a header value")]
    HeaderValue { upstream: String, var: String },
    #[error("cannot start `{program}`: {error}")]
    Spawn {
        program: String,
        error: std::io::Error,
    },
    #[error("{0}")]
    Client(reqwest::Error),
    /// The MCP handshake with the upstream failed.
    #[error("{0}")]
    Handshake(String),
}

const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often a connected upstream is pinged, and how long it has to
/// answer. A streamable-HTTP upstream that went away is otherwise noticed
/// by nothing: its client keeps the session it had, `/healthz` says
/// connected, and every call fails until the gateway restarts.
const PING_EVERY: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub prefix: String,
    peer: watch::Receiver<Option<Peer<RoleClient>>>,
    timeout: Duration,
    progress: Arc<Progress>,
    /// How to connect again: an agent session's own link ([`crate::relay`]).
    transport: Transport,
    headers: reqwest::header::HeaderMap,
}

/// One connection to an upstream a request goes on: the shared one, or an
/// agent session's link. Progress on it is relayed through `progress` (the
/// connection's own: each numbers its progress tokens from 0); `calls`
/// records which agent request each forwarded request serves (links only).
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    pub(crate) peer: Peer<RoleClient>,
    pub(crate) progress: Arc<Progress>,
    pub(crate) calls: Option<Arc<InFlight>>,
}

/// Where the progress an upstream reports for a forwarded request goes.
/// Upstreams are shared by every agent's session, and the gateway's
/// client gives each forwarded request a progress token of its own (the
/// agent's never goes upstream): progress on it is relayed to the agent
/// that sent the request, on the agent's token. Progress that comes in
/// before its request is registered (the upstream was quicker than the
/// send returned) is kept a little while for it.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    state: Mutex<ProgressState>,
}

#[derive(Debug, Default)]
struct ProgressState {
    listeners: HashMap<ProgressToken, Listener>,
    early: HashMap<ProgressToken, (Instant, Vec<ProgressNotificationParam>)>,
}

/// Early progress kept per token, for how long, and for how many tokens.
const EARLY_KEEP: Duration = Duration::from_secs(5);
const EARLY_PER_TOKEN: usize = 16;
const EARLY_TOKENS: usize = 256;

/// The agent a forwarded request's progress goes to.
#[derive(Debug, Clone)]
pub(crate) struct Listener {
    peer: Peer<RoleServer>,
    token: ProgressToken,
    /// Progress already reported to the agent on this token (a held call's
    /// keep-alives): the upstream's is counted on from there.
    offset: f64,
    /// The last progress sent on the token (none yet: any). A token's
    /// progress must only increase, and rmcp handles each notification in
    /// a task of its own, so one overtaken by a later one is stale and
    /// dropped.
    last: Arc<tokio::sync::Mutex<Option<f64>>>,
}

impl Listener {
    /// `sent`: the keep-alives already sent on `token` (0: none).
    pub(crate) fn new(peer: Peer<RoleServer>, token: ProgressToken, sent: u32) -> Self {
        let offset = f64::from(sent);
        Self {
            peer,
            token,
            offset,
            last: Arc::new(tokio::sync::Mutex::new((sent > 0).then_some(offset))),
        }
    }

    async fn relay(&self, p: ProgressNotificationParam) {
        let progress = self.offset + p.progress;
        let mut last = self.last.lock().await;
        if last.is_some_and(|l| progress <= l) {
            return;
        }
        let mut relayed = ProgressNotificationParam::new(self.token.clone(), progress);
        relayed.total = p.total.map(|t| self.offset + t);
        relayed.message = p.message;
        match self.peer.notify_progress(relayed).await {
            Ok(()) => *last = Some(progress),
            Err(e) => tracing::debug!(error = %e, "relayed progress not delivered"),
        }
    }
}

impl Progress {
    /// Start relaying `token`'s progress to `to`, first what came early.
    async fn listen(self: &Arc<Self>, token: ProgressToken, to: Listener) -> Registered {
        let early = match self.state.lock() {
            Ok(mut s) => {
                s.listeners.insert(token.clone(), to.clone());
                s.early.remove(&token).map(|(_, e)| e).unwrap_or_default()
            }
            Err(_) => Vec::new(),
        };
        for p in early {
            to.relay(p).await;
        }
        Registered {
            relay: self.clone(),
            token,
        }
    }

    pub(crate) async fn progress(&self, p: ProgressNotificationParam) {
        let to = match self.state.lock() {
            Ok(mut s) => match s.listeners.get(&p.progress_token) {
                Some(to) => Some(to.clone()),
                None => {
                    let now = Instant::now();
                    s.early
                        .retain(|_, (at, _)| now.duration_since(*at) < EARLY_KEEP);
                    if s.early.len() < EARLY_TOKENS || s.early.contains_key(&p.progress_token) {
                        let (_, kept) = s
                            .early
                            .entry(p.progress_token.clone())
                            .or_insert_with(|| (now, Vec::new()));
                        if kept.len() < EARLY_PER_TOKEN {
                            kept.push(p.clone());
                        }
                    }
                    None
                }
            },
            Err(_) => None,
        };
        if let Some(to) = to {
            to.relay(p).await;
        }
    }
}

/// A request's relay: its listener goes when this is dropped (after the
/// answer, progress reaches nobody).
#[derive(Debug)]
struct Registered {
    relay: Arc<Progress>,
    token: ProgressToken,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut s) = self.relay.state.lock() {
            s.listeners.remove(&self.token);
        }
    }
}

/// Tells the upstream a request was abandoned (`notifications/cancelled`)
/// if dropped before its answer came: the agent went away.
struct CancelOnDrop {
    peer: Peer<RoleClient>,
    id: Option<RequestId>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        // Dropped outside a runtime (the process is ending): nobody to tell.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let peer = self.peer.clone();
        runtime.spawn(async move {
            let p = CancelledNotificationParam::new(Some(id), Some("the agent went away".into()));
            if let Err(e) = peer.notify_cancelled(p).await {
                tracing::debug!(error = %e, "upstream not told of a cancelled request");
            }
        });
    }
}

impl Upstream {
    /// Start the supervisor; the first connection is made in the background.
    /// `sessions`: every agent session, for what the shared connection
    /// relays to all of them (`list_changed`).
    pub fn start(
        cfg: &UpstreamConfig,
        timeout: Duration,
        sessions: Arc<Sessions>,
    ) -> Result<Arc<Self>, UpstreamError> {
        let transport = cfg.transport()?;
        let headers = upstream_headers(cfg)?;
        let (tx, rx) = watch::channel(None);
        let name = cfg.name.clone();
        let progress = Arc::new(Progress::default());
        let client = Client::shared(progress.clone(), sessions, name.clone(), cfg.prefix.clone());
        tokio::spawn(supervise(
            name.clone(),
            transport.clone(),
            headers.clone(),
            client,
            tx,
        ));
        Ok(Arc::new(Self {
            name,
            prefix: cfg.prefix.clone(),
            peer: rx,
            timeout,
            progress,
            transport,
            headers,
        }))
    }

    /// A connection of its own with `handler` (an agent session's link),
    /// bounded by the call timeout.
    pub(crate) async fn connect_link(&self, handler: Client) -> Result<Running, McpError> {
        let connecting = connect(&self.transport, &self.headers, handler);
        match tokio::time::timeout(self.timeout, connecting).await {
            Ok(Ok(running)) => Ok(running),
            Ok(Err(e)) => {
                tracing::warn!(upstream = %self.name, error = %e, "cannot connect a session's link");
                Err(self.unavailable())
            }
            Err(_) => Err(self.unavailable()),
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The shared connection, waiting at most the call timeout for it.
    pub(crate) async fn shared(&self) -> Result<Conn, McpError> {
        Ok(Conn {
            peer: self.peer().await?,
            progress: self.progress.clone(),
            calls: None,
        })
    }

    /// Forward `request` on `conn`, with the progress the upstream reports
    /// on it relayed to `to` (when the agent asked for progress), recorded
    /// as serving the agent's request `cause` while it runs, bounded by the
    /// call timeout, and cancelled upstream if the caller goes away first.
    pub(crate) async fn forward(
        &self,
        conn: Conn,
        request: ClientRequest,
        to: Option<Listener>,
        cause: RequestId,
    ) -> Result<ServerResult, McpError> {
        let Conn {
            peer,
            progress,
            calls,
        } = conn;
        self.run(peer, |peer| async move {
            let handle = peer
                .send_request_with_option(request, PeerRequestOptions::no_options())
                .await?;
            let mut cancel = CancelOnDrop {
                peer: peer.clone(),
                id: Some(handle.id.clone()),
            };
            let _serving = calls.map(|c| c.serving(handle.id.clone(), cause));
            let _listening = match to {
                Some(to) => Some(progress.listen(handle.progress_token.clone(), to).await),
                None => None,
            };
            let result = handle.await_response().await;
            cancel.id = None;
            result
        })
        .await
    }

    /// The answer to a forwarded `tools/call`.
    pub(crate) fn tool_response(&self, r: ServerResult) -> Result<CallToolResponse, McpError> {
        match r {
            ServerResult::CallToolResult(r) => Ok(CallToolResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
            ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
            _ => Err(self.unexpected()),
        }
    }

    pub(crate) fn unexpected(&self) -> McpError {
        McpError::internal_error(
            format!(
                "upstream `{}` answered with an unexpected result",
                self.name
            ),
            None,
        )
    }

    /// Whether the upstream is connected now.
    pub fn connected(&self) -> bool {
        self.peer.borrow().is_some()
    }

    /// The live client, waiting at most the call timeout for a (re)connection.
    async fn peer(&self) -> Result<Peer<RoleClient>, McpError> {
        let mut rx = self.peer.clone();
        let wait = tokio::time::timeout(self.timeout, rx.wait_for(Option::is_some)).await;
        match wait {
            Ok(Ok(peer)) => peer.clone().ok_or_else(|| self.unavailable()),
            _ => Err(self.unavailable()),
        }
    }

    fn unavailable(&self) -> McpError {
        McpError::new(
            ErrorCode::INTERNAL_ERROR,
            format!("upstream `{}` is unavailable", self.name),
            None,
        )
    }

    /// Run one request against the upstream, bounded by the call timeout.
    /// Upstream JSON-RPC errors pass through; everything else is named.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, McpError>
    where
        F: FnOnce(Peer<RoleClient>) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let peer = self.peer().await?;
        self.run(peer, f).await
    }

    /// Run one request on `peer`, bounded by the call timeout.
    pub(crate) async fn run<T, F, Fut>(&self, peer: Peer<RoleClient>, f: F) -> Result<T, McpError>
    where
        F: FnOnce(Peer<RoleClient>) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        match tokio::time::timeout(self.timeout, f(peer)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(ServiceError::McpError(e))) => Err(e),
            Ok(Err(e)) => Err(McpError::new(
                ErrorCode::INTERNAL_ERROR,
                format!("upstream `{}` failed: {e}", self.name),
                None,
            )),
            Err(_) => Err(McpError::new(
                ErrorCode::INTERNAL_ERROR,
                format!(
                    "upstream `{}` did not answer within {}s",
                    self.name,
                    self.timeout.as_secs()
                ),
                None,
            )),
        }
    }
}

fn upstream_headers(cfg: &UpstreamConfig) -> Result<reqwest::header::HeaderMap, UpstreamError> {
    let mut map = reqwest::header::HeaderMap::new();
    for (header, var) in &cfg.headers_from_env {
        let value = std::env::var(var).map_err(|_| UpstreamError::MissingEnv {
            upstream: cfg.name.clone(),
            var: var.clone(),
            header: header.clone(),
        })?;
        let name = reqwest::header::HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
            UpstreamError::HeaderName {
                upstream: cfg.name.clone(),
                header: header.clone(),
            }
        })?;
        let mut value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
            UpstreamError::HeaderValue {
                upstream: cfg.name.clone(),
                var: var.clone(),
            }
        })?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

async fn supervise(
    name: String,
    transport: Transport,
    headers: reqwest::header::HeaderMap,
    client: Client,
    tx: watch::Sender<Option<Peer<RoleClient>>>,
) {
    let mut backoff = BACKOFF_START;
    loop {
        match connect(&transport, &headers, client.clone()).await {
            Ok(running) => {
                tracing::info!(upstream = %name, "upstream connected");
                backoff = BACKOFF_START;
                tx.send_replace(Some(running.peer().clone()));
                let watchdog = tokio::spawn(watch_liveness(
                    name.clone(),
                    running.peer().clone(),
                    running.cancellation_token(),
                ));
                let reason = running.waiting().await;
                watchdog.abort();
                tx.send_replace(None);
                tracing::warn!(upstream = %name, ?reason, "upstream connection ended; reconnecting");
            }
            Err(e) => {
                tracing::warn!(upstream = %name, error = %e, retry_in = ?backoff, "cannot connect upstream");
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Ping the upstream every [`PING_EVERY`]; one that does not answer in
/// [`PING_TIMEOUT`] (any answer counts, an error too) has its connection
/// ended, so the supervisor reconnects.
async fn watch_liveness(
    name: String,
    peer: Peer<RoleClient>,
    stop: rmcp::service::RunningServiceCancellationToken,
) {
    loop {
        tokio::time::sleep(PING_EVERY).await;
        let ping = peer.send_request(ClientRequest::PingRequest(Default::default()));
        match tokio::time::timeout(PING_TIMEOUT, ping).await {
            Ok(Ok(_) | Err(ServiceError::McpError(_))) => {}
            Ok(Err(e)) => {
                tracing::warn!(upstream = %name, error = %e, "upstream did not answer a ping");
                stop.cancel();
                return;
            }
            Err(_) => {
                tracing::warn!(upstream = %name, "upstream did not answer a ping in time");
                stop.cancel();
                return;
            }
        }
    }
}

pub(crate) type Running = rmcp::service::RunningService<RoleClient, Client>;

async fn connect(
    transport: &Transport,
    headers: &reqwest::header::HeaderMap,
    handler: Client,
) -> Result<Running, UpstreamError> {
    match transport {
        Transport::Stdio { program, args } => {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args);
            let (child, _) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|error| UpstreamError::Spawn {
                    program: program.clone(),
                    error,
                })?;
            handler
                .serve(child)
                .await
                .map_err(|e| UpstreamError::Handshake(e.to_string()))
        }
        Transport::Http { url } => {
            let client = reqwest::Client::builder()
                .default_headers(headers.clone())
                .build()
                .map_err(UpstreamError::Client)?;
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
            let t = StreamableHttpClientTransport::with_client(client, config);
            handler
                .serve(t)
                .await
                .map_err(|e| UpstreamError::Handshake(e.to_string()))
        }
    }
}

/// Every upstream, and which one a prefixed name belongs to.
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub all: Vec<Arc<Upstream>>,
    /// Which upstream listed a resource URI (filled by `resources/list`).
    pub resource_owner: Arc<std::sync::RwLock<HashMap<String, usize>>>,
}

impl Upstreams {
    /// The upstream whose prefix starts `name` (the longest such prefix),
    /// and the upstream's own name for it.
    pub fn route<'a>(&self, name: &'a str) -> Option<(&Arc<Upstream>, &'a str)> {
        self.all
            .iter()
            .filter_map(|u| name.strip_prefix(u.prefix.as_str()).map(|rest| (u, rest)))
            .filter(|(_, rest)| !rest.is_empty())
            .max_by_key(|(u, _)| u.prefix.len())
    }
}
