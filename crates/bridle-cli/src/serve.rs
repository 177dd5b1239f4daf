//! `bridle serve`: the HTTP server on the configured store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use bridle_server::Config;

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080; also `BRIDLE_LISTEN`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// `sqlite://PATH` (default `./bridle-data/bridle.db`) or `postgres://…` (also `BRIDLE_DB`).
    #[arg(long)]
    db: Option<String>,
    /// A TOML configuration file (keys: listen, db, tls, issuer, audience, body_limit, webhooks,
    /// token_cache_ms, key_encryption_key_file, metrics_token).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The file holding the key-encryption key that seals the signing keys in the
    /// database (also `BRIDLE_KEY_ENCRYPTION_KEY_FILE`; the key itself may be given
    /// in `BRIDLE_KEY_ENCRYPTION_KEY`). Required with PostgreSQL; an embedded SQLite
    /// database defaults to `<database>.kek`, generated on first start.
    #[arg(long, value_name = "FILE")]
    key_encryption_key_file: Option<PathBuf>,
    /// Serve https with this PEM certificate chain (with `--tls-key`; also
    /// `BRIDLE_TLS_CERT_FILE`, `[tls] cert_file`).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, RSA or EC) of `--tls-cert` (also
    /// `BRIDLE_TLS_KEY_FILE`, `[tls] key_file`).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Also run the MCP gateway of this YAML file, on its own listener.
    #[arg(long, value_name = "FILE")]
    gateway: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long)]
    json_logs: bool,
}

/// Logs, and traces when OTLP export is configured (service `bridle`);
/// keep the guard until exit, outside the runtime.
pub(crate) fn init_tracing(json: bool) -> crate::telemetry::Telemetry {
    crate::telemetry::init(json, "bridle")
}

pub(crate) fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(db) = &args.db {
        config.db.clone_from(db);
    }
    if let Some(file) = &args.tls_cert {
        config.tls.cert_file = Some(file.clone());
    }
    if let Some(file) = &args.tls_key {
        config.tls.key_file = Some(file.clone());
    }
    if let Some(file) = &args.key_encryption_key_file {
        config.key_encryption_key_file = Some(file.clone());
    }
    Ok(config)
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
}

pub(crate) fn run(args: &ServeArgs) -> ExitCode {
    let telemetry = init_tracing(args.json_logs);
    let result = load_config(args).and_then(|config| {
        runtime()?.block_on(async {
            let started = match &args.gateway {
                None => bridle_server::start(config).await?,
                Some(_) => bridle_server::start_with_gateway(config).await?,
            };
            if let Some(key) = &started.generated_admin_key {
                sayln!("Generated the bootstrap admin `admin`; its API key (shown once):\n  {key}");
            }
            sayln!("Bridle listening on {}", started.state.config.base_url());
            let serving = async {
                match (&args.gateway, started.gateway_key) {
                    (Some(path), Some(key)) => {
                        let gateway = crate::gateway::start_in_process(path, key.expose().clone())?;
                        sayln!("Bridle MCP gateway at {}", gateway.config.resource());
                        tokio::try_join!(
                            async {
                                Ok::<_, anyhow::Error>(bridle_server::serve(started.state).await?)
                            },
                            async { Ok(gateway.serve().await?) }
                        )
                        .map(drop)
                    }
                    _ => Ok(bridle_server::serve(started.state).await?),
                }
            };
            crate::telemetry::until_stopped(&telemetry, serving).await
        })
    });
    drop(telemetry);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
