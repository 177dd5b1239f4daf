//! `bridle audit`: verify the hash chain of an audit log.

use std::process::ExitCode;

use bridle_store::{AuditRead, Store};

use crate::Output;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Walk the whole hash chain and report the first altered, removed or
    /// reordered record. Exit code 0 when intact, 2 when broken, 1 on error.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// Read the store directly, offline (`sqlite://PATH` or `postgres://…`).
    #[arg(long, env = "BRIDLE_DB")]
    db: String,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub(crate) fn run(command: &AuditCommand) -> ExitCode {
    match command {
        AuditCommand::Verify(args) => verify(args),
    }
}

fn verify(args: &VerifyArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(path) = args.db.strip_prefix("sqlite://") {
        // Verifying must never create an empty database where none was.
        if !std::path::Path::new(path).exists() {
            eprintln!("error: `{path}` does not exist");
            return ExitCode::from(1);
        }
    }
    let result = runtime.block_on(async {
        let store = Store::connect(&args.db).await?;
        let v = store.verify_audit().await;
        store.close().await;
        v
    });
    match result {
        Ok(v) => {
            match args.output {
                Output::Json => {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())
                }
                Output::Text if v.ok => {
                    println!("ok: {} events, chain intact, head {}", v.events, v.head)
                }
                Output::Text => println!(
                    "broken: the chain fails at seq {} ({} events read); records from there on cannot be trusted",
                    v.first_bad_seq.unwrap_or(0),
                    v.events
                ),
            }
            ExitCode::from(if v.ok { 0 } else { 2 })
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
