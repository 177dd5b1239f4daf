//! Bridle's MCP gateway: agents connect over streamable HTTP at `/mcp` with
//! a Bridle access token; every `tools/call`, `prompts/get` and
//! `resources/read` is decided by the Bridle server before it is forwarded
//! to an upstream MCP server (stdio or streamable HTTP), and `tools/list`
//! shows only what the agent's record can reach. The gateway holds no
//! policy of its own: it is a policy enforcement point (`pep`) of the server.

pub mod bridle;
pub mod config;
mod held;
pub mod http;
mod listen;
pub mod proxy;
pub mod relay;
mod resources;
mod subscriptions;
pub mod telemetry;
pub mod upstream;

use std::collections::HashMap;
use std::sync::Arc;

pub use config::Config;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] bridle_tls::TlsError),
    #[error("gateway stopped: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Upstream(#[from] upstream::UpstreamError),
    /// The `pep` key does not work against the server.
    #[error("the Bridle server at {url} refused the key in `{var}`: {why}")]
    PepKey {
        var: String,
        url: String,
        why: String,
    },
    #[error("cannot check the key in `{var}`: {why}")]
    PepKeyUnchecked { var: String, why: String },
}

/// A configured gateway: upstream supervisors started, router built.
#[derive(Debug)]
pub struct Gateway {
    pub config: Config,
    bridle: bridle::Bridle,
    router: axum::Router,
    /// The listener's TLS, read at start-up (`tls`).
    tls: Option<Arc<bridle_tls::rustls::ServerConfig>>,
}

impl Gateway {
    /// Read the `pep` key from the environment, start the upstreams.
    /// The key is checked against the server first (before any upstream
    /// starts): a wrong one is an error naming its variable.
    pub async fn start(config: Config) -> Result<Self, GatewayError> {
        let key = std::env::var(&config.pep_key_env).map_err(|_| {
            GatewayError::Config(format!(
                "environment variable `{}` (the API key of a `pep` principal) is not set",
                config.pep_key_env
            ))
        })?;
        let bridle = bridle_client(&config, key.clone())?;
        check_key(&config, &bridle).await?;
        Self::with_key(config, key)
    }

    /// Start with the `pep` key given directly.
    pub fn with_key(config: Config, key: String) -> Result<Self, GatewayError> {
        let tls = config
            .tls
            .as_ref()
            .map(bridle_tls::server_config)
            .transpose()?;
        let bridle = bridle_client(&config, key)?;
        let sessions = Arc::new(relay::Sessions::default());
        let _ = sessions.bridle.set(bridle.clone());
        let all = config
            .upstreams
            .iter()
            .map(|u| upstream::Upstream::start(u, config.call_timeout(), sessions.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let shared = Arc::new(proxy::Shared {
            sessions,
            bridle: bridle.clone(),
            upstreams: upstream::Upstreams {
                all,
                resource_owner: Arc::new(std::sync::RwLock::new(HashMap::new())),
            },
            approval_wait: config.approval_wait(),
        });
        let router = http::router(shared, config.resource(), config.accept_audiences.clone());
        Ok(Self {
            config,
            bridle,
            router,
            tls,
        })
    }

    /// Ask the server whether it accepts the `pep` key, so that a wrong key
    /// stops the gateway at start-up instead of refusing every agent later.
    pub async fn check_key(&self) -> Result<(), GatewayError> {
        check_key(&self.config, &self.bridle).await
    }

    /// Serve on `config.listen` until the process stops.
    pub async fn serve(self) -> Result<(), GatewayError> {
        let addr = self.config.listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| GatewayError::Listen { addr, source })?;
        self.serve_on(listener).await
    }

    /// Serve on an already bound listener (tests bind port 0).
    pub async fn serve_on(self, listener: tokio::net::TcpListener) -> Result<(), GatewayError> {
        tracing::info!(addr = ?listener.local_addr().ok(), resource = %self.config.resource(), "bridle gateway listening");
        bridle_tls::serve(listener, self.tls, self.router)
            .await
            .map_err(GatewayError::Serve)
    }
}

/// The client of the Bridle server, trusting `bridle_ca_file` too.
fn bridle_client(config: &Config, key: String) -> Result<bridle::Bridle, GatewayError> {
    // reqwest is built with rustls but no provider of its own; upstream
    // clients need it as well.
    bridle_tls::install_provider();
    let roots = match &config.bridle_ca_file {
        Some(path) => bridle_tls::load_certs(path)?,
        None => Vec::new(),
    };
    bridle::Bridle::new(&config.bridle_url, key, config.call_timeout(), roots)
        .map_err(|e| GatewayError::Config(e.to_string()))
}

async fn check_key(config: &Config, bridle: &bridle::Bridle) -> Result<(), GatewayError> {
    let var = config.pep_key_env.clone();
    let refused = |why: &str| GatewayError::PepKey {
        var: var.clone(),
        url: config.bridle_url.clone(),
        why: why.to_owned(),
    };
    match bridle.check_key().await {
        Ok(()) => Ok(()),
        Err(bridle::BridleError::Unauthenticated(_)) => {
            Err(refused("it is not the API key of an active principal"))
        }
        Err(bridle::BridleError::Status { status: 403, .. }) => {
            Err(refused("its principal does not have the role `pep`"))
        }
        Err(e) => Err(GatewayError::PepKeyUnchecked {
            var: var.clone(),
            why: e.to_string(),
        }),
    }
}
