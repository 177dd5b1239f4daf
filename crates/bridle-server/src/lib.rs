//! Bridle's HTTP API (axum): the registry, OAuth for agents, decisions,
//! approvals, elevation, lifecycle, audit and findings. Storage types stay in
//! `bridle-store`; every handler gets its caller from one checkpoint
//! ([`auth::Caller`]).

pub mod access;
pub mod auth;
pub mod capability;
pub mod changes;
pub mod charts;
pub mod checkpoints;
pub mod client_metadata;
pub mod config;
pub mod console;
pub mod error;
pub mod ext_authz;
pub mod jose;
pub mod json;
pub mod kek;
pub mod metrics;
pub mod openapi;
pub mod path;
pub mod posture;
pub mod report;
pub mod routes;
pub mod service;
pub mod state;
pub mod telemetry;
pub mod throttle;
pub mod token_cache;
pub mod tokens;
pub mod views;
pub mod webhooks;

use bridle_store::{PrincipalStore, Store, UsageStore as _};

/// Install ring as the process's rustls provider, which HTTP clients need
/// (reqwest is built without one); [`start`] does it too.
pub use bridle_tls::install_provider as install_tls_provider;
pub use config::{Config, Secret};
pub use state::AppState;

/// What `start` reports to the caller (the CLI prints it).
#[derive(Debug)]
pub struct Started {
    pub state: AppState,
    /// Set when no `BRIDLE_ADMIN_TOKEN` was given and a key was generated.
    pub generated_admin_key: Option<String>,
    /// The key of the `pep` principal [`IN_PROCESS_GATEWAY`], when
    /// [`start_with_gateway`] started the server.
    pub gateway_key: Option<Secret>,
}

/// The `pep` principal of the MCP gateway that runs inside the server's
/// process (`bridle serve --gateway`).
pub const IN_PROCESS_GATEWAY: &str = "gateway-in-process";

/// Why the server could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] bridle_store::StoreError),
    #[error(transparent)]
    Kek(#[from] kek::KekError),
    #[error(transparent)]
    Id(#[from] bridle_core::id::IdError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("TLS: {0}")]
    Tls(#[from] bridle_tls::TlsError),
    #[error("{0}")]
    Serve(std::io::Error),
}

/// Connect the store, open it with the key-encryption key (before anything
/// is written: a wrong or missing key changes nothing), bootstrap the admin,
/// build the state.
pub async fn start(config: Config) -> Result<Started, StartError> {
    start_inner(config, false).await
}

/// [`start`], and give the `pep` principal [`IN_PROCESS_GATEWAY`] a fresh
/// key for the gateway running beside the server: a first start needs no
/// key from anyone, each start replaces the last key, and it is never shown.
pub async fn start_with_gateway(config: Config) -> Result<Started, StartError> {
    start_inner(config, true).await
}

async fn start_inner(config: Config, gateway: bool) -> Result<Started, StartError> {
    // A half-given or unreadable certificate stops the start before the
    // store is touched (and is read again, the same way, by `serve_on`).
    tls_config(&config)?;
    // reqwest is built with rustls but no provider (webhooks, witnesses).
    bridle_tls::install_provider();
    let store = Store::connect_with(&config.db, config.database.timeouts()).await?;
    let kek = kek::open_store(&config, &store).await?;
    let admin = "admin".parse()?;
    let generated_admin_key = match &config.admin_token {
        Some(key) => {
            store
                .ensure_admin(&admin, &tokens::hash_secret(key.expose()))
                .await?;
            None
        }
        None if store.principal(&admin).await?.is_none() => {
            let key = format!("bk_{}", tokens::random_token(32));
            store
                .ensure_admin(&admin, &tokens::hash_secret(&key))
                .await?;
            Some(key)
        }
        None => None,
    };
    let gateway_key = if gateway {
        let key = format!("bk_{}", tokens::random_token(32));
        store
            .ensure_builtin(
                &IN_PROCESS_GATEWAY.parse()?,
                "In-process MCP gateway",
                &[bridle_store::Role::Pep],
                &tokens::hash_secret(&key),
            )
            .await?;
        Some(Secret::new(key))
    } else {
        None
    };
    warn_if_one_person(&store, &config).await?;
    let state = AppState::new(store, config, kek).await?;
    Ok(Started {
        state,
        generated_admin_key,
        gateway_key,
    })
}

/// Change control needs a second person: say so at start-up when no more
/// than one active principal could approve a change (a deployment with one
/// admin), since every widening change would then wait for ever.
async fn warn_if_one_person(store: &Store, config: &Config) -> Result<(), StartError> {
    let cc = &config.change_control;
    if cc.environments.is_empty() {
        return Ok(());
    }
    let approvers = store
        .principals()
        .await?
        .into_iter()
        .filter(|p| p.active && cc.approvers.iter().any(|a| access::names_approver(a, p)))
        .count();
    if approvers < 2 {
        tracing::warn!(
            environments = ?cc.environments,
            approvers = ?cc.approvers,
            eligible = approvers,
            "change control needs a second person: widening changes and new agents in these environments wait for an approver other than their submitter, and fewer than two principals can approve; add one (`POST /v1/principals` with role `admin`, or set `[change_control] approvers`)"
        );
    }
    Ok(())
}

/// Serve until the process is stopped.
pub async fn serve(state: AppState) -> Result<(), StartError> {
    let addr = state.config.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    serve_on(listener, state).await
}

/// Serve on an already bound listener (tests bind port 0).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
) -> Result<(), StartError> {
    let tls = tls_config(&state.config)?;
    tracing::info!(addr = ?listener.local_addr().ok(), tls = tls.is_some(), "bridle listening");
    tokio::spawn(maintain(state.clone()));
    tokio::spawn(changes::listen(state.clone()));
    tokio::spawn(checkpoints::run(state.clone()));
    tokio::spawn(posture::run(state.clone()));
    tokio::spawn(throttle::report_loop(state.clone()));
    // The peer address (`ConnectInfo`, kept under TLS) is the source failed
    // authentications are counted by.
    bridle_tls::serve(listener, tls, routes::router(state))
        .await
        .map_err(StartError::Serve)
}

/// The rustls configuration of `[tls]`, or `None` for plain http.
fn tls_config(
    config: &Config,
) -> Result<Option<std::sync::Arc<bridle_tls::rustls::ServerConfig>>, StartError> {
    match config.tls.files()? {
        Some(files) => Ok(Some(bridle_tls::server_config(&files)?)),
        None => Ok(None),
    }
}

/// How often keys are re-read and expired token records dropped.
const MAINTENANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Background upkeep: pick up signing keys rotated by another replica (and
/// let retired ones age out of JWKS), and forget revoked-token and one-time
/// id records once what they guard has expired. Failures are logged and
/// retried on the next round; nothing here is on a request's path.
#[expect(
    clippy::disallowed_methods,
    reason = "a background task below the transports: it purges expired token records"
)]
async fn maintain(state: AppState) {
    use bridle_store::CredentialStore;
    let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = state.reload_keys().await {
            tracing::warn!(error = %e, "cannot reload signing keys");
        }
        // A margin past expiry, for clock skew between replicas.
        let before = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(5);
        if let Err(e) = service::manifest::expire_overdue(&state).await {
            tracing::warn!(error = %e, "cannot discard expired manifest proposals");
        }
        match state.store().purge_usage(jiff::Timestamp::now()).await {
            Ok(rows) if rows > 0 => tracing::debug!(rows, "usage outside every window dropped"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot drop old usage"),
        }
        match service::console::purge(&state).await {
            Ok(rows) if rows > 0 => tracing::debug!(rows, "ended console sessions dropped"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot drop ended console sessions"),
        }
        match service::authorize::purge(&state).await {
            Ok(rows) if rows > 0 => {
                tracing::debug!(rows, "expired authorization requests and codes dropped")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot drop expired authorization requests and codes")
            }
        }
        match state.store().purge_expired(before).await {
            Ok(bridle_store::Purged { tokens, jtis }) if tokens + jtis > 0 => {
                tracing::debug!(tokens, jtis, "expired token records dropped");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot drop expired token records"),
        }
    }
}
