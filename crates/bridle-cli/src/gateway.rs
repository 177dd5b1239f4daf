//! `bridle gateway --config FILE`: the MCP gateway on its own; `bridle serve
//! --gateway FILE` runs the same gateway beside the server in one process.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bridle_gateway::{Config, Gateway};

#[derive(Debug, clap::Args)]
pub(crate) struct GatewayArgs {
    /// The gateway's YAML configuration (listen, bridle_url, pep_key_env,
    /// approval_wait, accept_audiences, upstreams).
    #[arg(long)]
    config: PathBuf,
    /// Log as JSON lines.
    #[arg(long)]
    json_logs: bool,
}

/// Load the configuration, check the `pep` key with the server, start the
/// upstreams (needs a runtime).
pub(crate) async fn start(path: &Path) -> anyhow::Result<Gateway> {
    let config = Config::load(path)?;
    Ok(Gateway::start(config).await?)
}

/// The gateway inside the server's process: its key is the one the server
/// gave its in-process `pep` principal, not one from the environment.
pub(crate) fn start_in_process(path: &Path, key: String) -> anyhow::Result<Gateway> {
    let config = Config::load(path)?;
    Ok(Gateway::with_key(config, key)?)
}

pub(crate) fn run(args: &GatewayArgs) -> ExitCode {
    let telemetry = crate::telemetry::init(args.json_logs, "bridle-gateway");
    let result = crate::serve::runtime().and_then(|rt| {
        rt.block_on(async {
            let gateway = start(&args.config).await?;
            sayln!("Bridle MCP gateway at {}", gateway.config.resource());
            crate::telemetry::until_stopped(&telemetry, async { Ok(gateway.serve().await?) }).await
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
