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

/// Load the configuration and start the upstreams (needs a runtime).
pub(crate) fn start(path: &Path) -> anyhow::Result<Gateway> {
    let config = Config::load(path)?;
    Ok(Gateway::start(config)?)
}

pub(crate) fn run(args: &GatewayArgs) -> ExitCode {
    crate::serve::init_tracing(args.json_logs);
    let result = crate::serve::runtime().and_then(|rt| {
        rt.block_on(async {
            let gateway = start(&args.config)?;
            println!("Bridle MCP gateway at {}", gateway.config.resource());
            Ok(gateway.serve().await?)
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
