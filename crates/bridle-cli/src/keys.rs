//! `bridle keys`: the server's token signing keys (admin).

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::Output;
use crate::client::{Client, ClientError, Remote};
use crate::output::{cell, finish, items, render, table};

#[derive(Debug, clap::Args)]
pub(crate) struct KeysArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// List the signing keys: current, retiring (still in JWKS until the
    /// tokens they signed expire) and retired.
    List {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Sign new tokens with a new key; the old one stays in JWKS and keeps
    /// verifying until the last token it signed has expired.
    Rotate {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

pub(crate) fn run(args: &KeysArgs) -> ExitCode {
    finish(execute(args))
}

fn execute(args: &KeysArgs) -> Result<String, ClientError> {
    let client = Client::new(&args.remote)?;
    match &args.command {
        KeysCommand::List { output } => {
            let v = client.get(&["v1", "keys"], &[])?;
            Ok(render(*output, &v, keys_text))
        }
        KeysCommand::Rotate { output } => {
            let v = client.post(&["v1", "keys", "rotate"], json!({}))?;
            Ok(render(*output, &v, keys_text))
        }
    }
}

fn keys_text(v: &Value) -> String {
    let rows: Vec<Vec<String>> = items(v, "keys")
        .iter()
        .map(|k| {
            vec![
                cell(&k["kid"]),
                cell(&k["state"]),
                cell(&k["created_at"]),
                k.get("published_until").map(cell).unwrap_or_default(),
            ]
        })
        .collect();
    table(&["KID", "STATE", "CREATED", "IN JWKS UNTIL"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_listed_with_their_state() {
        let text = keys_text(&json!({"keys": [
            {"kid": "new", "state": "current", "created_at": "t1"},
            {"kid": "old", "state": "retiring", "created_at": "t0", "published_until": "t2"},
        ]}));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("new") && lines[1].contains("current"));
        assert!(lines[2].contains("retiring") && lines[2].ends_with("t2"));
    }
}
