//! Connections to upstream MCP servers. Each upstream has a supervisor task
//! that connects, publishes the live client, and on loss (a stdio server
//! that exits, an HTTP server that goes away) reconnects with exponential
//! backoff. Callers never wait longer than the call timeout for it.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rmcp::ErrorData as McpError;
use rmcp::ServiceExt;
use rmcp::model::ErrorCode;
use rmcp::service::{Peer, RoleClient, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use tokio::sync::watch;

use crate::config::{Transport, UpstreamConfig};

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

#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub prefix: String,
    peer: watch::Receiver<Option<Peer<RoleClient>>>,
    timeout: Duration,
}

impl Upstream {
    /// Start the supervisor; the first connection is made in the background.
    pub fn start(cfg: &UpstreamConfig, timeout: Duration) -> Result<Arc<Self>, UpstreamError> {
        let transport = cfg.transport()?;
        let headers = upstream_headers(cfg)?;
        let (tx, rx) = watch::channel(None);
        let name = cfg.name.clone();
        tokio::spawn(supervise(name.clone(), transport, headers, tx));
        Ok(Arc::new(Self {
            name,
            prefix: cfg.prefix.clone(),
            peer: rx,
            timeout,
        }))
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
    tx: watch::Sender<Option<Peer<RoleClient>>>,
) {
    let mut backoff = BACKOFF_START;
    loop {
        match connect(&transport, &headers).await {
            Ok(running) => {
                tracing::info!(upstream = %name, "upstream connected");
                backoff = BACKOFF_START;
                tx.send_replace(Some(running.peer().clone()));
                let reason = running.waiting().await;
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

type Running = rmcp::service::RunningService<RoleClient, ()>;

async fn connect(
    transport: &Transport,
    headers: &reqwest::header::HeaderMap,
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
            ().serve(child)
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
            ().serve(t)
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
