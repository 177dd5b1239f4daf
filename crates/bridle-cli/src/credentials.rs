//! `bridle agent credentials`: an agent's OAuth clients — create (a secret,
//! or a registered public key for `private_key_jwt`), list, rotate a secret
//! with an overlap window, revoke.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::Output;
use crate::client::{Client, ClientError};
use crate::output::{cell, fields, items, render, table};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum CredentialsCommand {
    /// Create a client: a client id and secret (the secret is shown once),
    /// or with `--jwk` a client that authenticates with `private_key_jwt`.
    Create {
        id: String,
        /// A file with the client's public JWK (Ed25519, P-256, P-384 or
        /// RSA ≥ 2048 bits); no secret is made.
        #[arg(long)]
        jwk: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// List the agent's clients (never their secrets).
    List {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Give a client a new secret; the old one keeps working for `--overlap`.
    Rotate {
        id: String,
        client_id: String,
        /// How long the previous secret keeps working (`0s` to `7d`).
        #[arg(long, default_value = "1h")]
        overlap: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Revoke a client and every token issued to it.
    Revoke {
        id: String,
        client_id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

/// A public JWK from a file: JSON, checked to be an object here; the server
/// judges the key.
fn read_jwk(path: &Path) -> Result<Value, ClientError> {
    let name = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::Local(format!("cannot read `{name}`: {e}")))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        ClientError::Local(format!("{name}:{}:{}: not JSON: {e}", e.line(), e.column()))
    })?;
    if !v.is_object() {
        return Err(ClientError::Local(format!(
            "{name}: a JWK must be a JSON object"
        )));
    }
    Ok(v)
}

pub(crate) fn execute(
    client: impl FnOnce() -> Result<Client, ClientError>,
    command: &CredentialsCommand,
) -> Result<String, ClientError> {
    match command {
        CredentialsCommand::Create { id, jwk, output } => {
            let body = match jwk {
                Some(path) => json!({ "jwk": read_jwk(path)? }),
                None => json!({}),
            };
            let v = client()?.post(&["v1", "agents", id, "credentials"], body)?;
            if v.get("client_secret").is_some() {
                eprintln!("warning: the client secret is shown once; store it now");
            }
            Ok(render(*output, &v, created_text))
        }
        CredentialsCommand::List { id, output } => {
            let v = client()?.get(&["v1", "agents", id, "credentials"], &[])?;
            Ok(render(*output, &v, |v| list_text(items(v, "credentials"))))
        }
        CredentialsCommand::Rotate {
            id,
            client_id,
            overlap,
            output,
        } => {
            let v = client()?.post(
                &["v1", "agents", id, "credentials", client_id, "rotate"],
                json!({ "overlap": overlap }),
            )?;
            eprintln!("warning: the new client secret is shown once; store it now");
            Ok(render(*output, &v, |v| {
                let until = match v.get("previous_secret_expires_at") {
                    Some(t) => cell(t),
                    None => "now (no overlap)".into(),
                };
                fields(&[
                    ("client_id", cell(&v["client_id"])),
                    ("client_secret", cell(&v["client_secret"])),
                    ("previous secret works until", until),
                ])
            }))
        }
        CredentialsCommand::Revoke {
            id,
            client_id,
            output,
        } => {
            let v = client()?.post(
                &["v1", "agents", id, "credentials", client_id, "revoke"],
                json!({}),
            )?;
            Ok(render(*output, &v, |v| {
                format!(
                    "revoked `{}` and its tokens at {}\n",
                    cell(&v["client_id"]),
                    cell(&v["revoked_at"])
                )
            }))
        }
    }
}

fn created_text(v: &Value) -> String {
    let mut pairs = vec![
        ("client_id", cell(&v["client_id"])),
        ("auth method", cell(&v["token_endpoint_auth_method"])),
    ];
    if let Some(secret) = v.get("client_secret") {
        pairs.push(("client_secret", cell(secret)));
    }
    if let Some(t) = v.get("jwk_thumbprint") {
        pairs.push(("key thumbprint", cell(t)));
    }
    fields(&pairs)
}

fn list_text(creds: &[Value]) -> String {
    let rows: Vec<Vec<String>> = creds
        .iter()
        .map(|c| {
            let state = if c.get("revoked_at").is_some() {
                format!("revoked {}", cell(&c["revoked_at"]))
            } else if let Some(until) = c.get("previous_secret_expires_at") {
                format!("rotating (old secret until {})", cell(until))
            } else {
                "active".into()
            };
            vec![
                cell(&c["client_id"]),
                cell(&c["token_endpoint_auth_method"]),
                cell(&c["created_at"]),
                state,
            ]
        })
        .collect();
    table(&["CLIENT ID", "AUTH METHOD", "CREATED", "STATE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwk_file_that_is_not_json_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(&path, "{\n  \"kty\": OKP\n}").unwrap();
        let Err(ClientError::Local(msg)) = read_jwk(&path) else {
            panic!("expected a local error");
        };
        assert!(msg.starts_with(&format!("{}:2:", path.display())), "{msg}");
        std::fs::write(&path, "[1]").unwrap();
        assert!(read_jwk(&path).is_err());
    }

    #[test]
    fn the_list_shows_rotation_and_revocation() {
        let text = list_text(&[
            json!({"client_id": "a.1", "token_endpoint_auth_method": "client_secret_basic",
                   "created_at": "t0", "previous_secret_expires_at": "t9"}),
            json!({"client_id": "a.2", "token_endpoint_auth_method": "private_key_jwt",
                   "created_at": "t1", "revoked_at": "t2"}),
        ]);
        assert!(text.contains("rotating (old secret until t9)"), "{text}");
        assert!(text.contains("revoked t2"), "{text}");
    }
}
