//! `bridle token`: an access token from the server's token endpoint
//! (`POST /oauth/token`, client credentials with `client_secret_basic`),
//! printed for scripts and for MCP clients that take a static
//! `Authorization` header. No DPoP: an agent whose manifest requires
//! DPoP-bound tokens gets the server's refusal, with a hint.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

use crate::Output;
use crate::client::{Client, ClientError, Remote};
use crate::output::{cell, finish, render};

pub(crate) const CLIENT_SECRET_ENV: &str = "BRIDLE_CLIENT_SECRET";

#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    remote: Remote,
    /// The agent's OAuth client id (`bridle agent credentials create`).
    #[arg(long)]
    client_id: String,
    /// A file holding the client secret (`-`: standard input); otherwise
    /// `BRIDLE_CLIENT_SECRET` is used. Never printed.
    #[arg(long, value_name = "FILE")]
    client_secret_file: Option<PathBuf>,
    /// The resource server the token is for (RFC 8707), e.g. the MCP
    /// gateway's URL; it becomes the token's `aud`. Without it the token is
    /// for the server's default audience (`bridle decide`).
    #[arg(long, value_name = "URL")]
    resource: Option<String>,
    /// Space-separated scope to ask for.
    #[arg(long)]
    scope: Option<String>,
    /// `token` prints the access token alone; `header` prints
    /// `Authorization: Bearer …`; `json` the token endpoint's whole answer.
    /// (`--output text|json`, as the other commands spell it, works too.)
    #[arg(long, alias = "output", value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
enum Format {
    #[default]
    #[value(alias = "text")]
    Token,
    Header,
    Json,
}

pub(crate) fn run(args: &TokenArgs) -> ExitCode {
    finish(execute(args))
}

/// The form sent to the token endpoint (the secret goes in the Basic
/// authorization, never in the form).
fn form(args: &TokenArgs) -> Vec<(&'static str, String)> {
    let mut fields = vec![("grant_type", "client_credentials".to_owned())];
    if let Some(r) = &args.resource {
        fields.push(("resource", r.clone()));
    }
    if let Some(s) = &args.scope {
        fields.push(("scope", s.clone()));
    }
    fields
}

fn execute(args: &TokenArgs) -> Result<String, ClientError> {
    let secret = crate::secret::read(args.client_secret_file.as_deref(), CLIENT_SECRET_ENV)?
        .ok_or_else(|| {
            ClientError::Local(format!(
                "no client secret: pass --client-secret-file FILE or set {CLIENT_SECRET_ENV}"
            ))
        })?;
    // The client authenticates itself; no API key is sent.
    let remote = Remote {
        token: None,
        ..args.remote.clone()
    };
    let client = Client::new(&remote)?;
    let v = match client.post_form(&["oauth", "token"], form(args), &args.client_id, secret) {
        Err(ClientError::Problem(mut p)) => {
            if p.detail.contains("dpop") {
                p.hint = Some(
                    "this agent's tokens must be DPoP-bound (RFC 9449); `bridle token` does not make DPoP proofs".into(),
                );
            }
            return Err(ClientError::Problem(p));
        }
        other => other?,
    };
    if v.get("access_token")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(ClientError::Unexpected {
            url: args.remote.url.clone(),
            reason: "the token endpoint's answer has no `access_token`".into(),
        });
    }
    Ok(text(args.format, &v))
}

fn text(format: Format, v: &Value) -> String {
    match format {
        Format::Json => render(Output::Json, v, |_| String::new()),
        Format::Token => format!("{}\n", cell(&v["access_token"])),
        Format::Header => format!("Authorization: Bearer {}\n", cell(&v["access_token"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;
    use serde_json::json;

    fn parse(args: &[&str]) -> TokenArgs {
        let mut argv = vec!["bridle", "token"];
        argv.extend(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Token(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_form_asks_for_client_credentials_with_resource_and_scope() {
        let a = parse(&[
            "--client-id",
            "mcp-bot.1",
            "--resource",
            "http://127.0.0.1:8090/mcp",
            "--scope",
            "a b",
        ]);
        assert_eq!(
            form(&a),
            vec![
                ("grant_type", "client_credentials".to_owned()),
                ("resource", "http://127.0.0.1:8090/mcp".to_owned()),
                ("scope", "a b".to_owned()),
            ]
        );
        assert_eq!(form(&parse(&["--client-id", "x"])).len(), 1);
    }

    #[test]
    fn output_json_is_format_json() {
        assert_eq!(
            parse(&["--client-id", "x", "--output", "json"]).format,
            Format::Json
        );
        assert_eq!(
            parse(&["--client-id", "x", "--output", "text"]).format,
            Format::Token
        );
    }

    #[test]
    fn there_is_no_option_for_the_secret_itself() {
        let argv = [
            "bridle",
            "token",
            "--client-id",
            "x",
            "--client-secret",
            "s",
        ];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    #[test]
    fn without_a_secret_nothing_is_sent() {
        let mut a = parse(&["--client-id", "x"]);
        // A closed port: had a request been made, the error would say
        // "cannot reach".
        a.remote.url = "http://127.0.0.1:9".into();
        if std::env::var_os(CLIENT_SECRET_ENV).is_none() {
            let err = execute(&a).unwrap_err().to_string();
            assert!(err.starts_with("no client secret"), "{err}");
        }
    }

    #[test]
    fn the_token_prints_alone_or_as_a_header() {
        let v = json!({"access_token": "eyJ.x.y", "token_type": "Bearer", "expires_in": 300});
        assert_eq!(text(Format::Token, &v), "eyJ.x.y\n");
        assert_eq!(text(Format::Header, &v), "Authorization: Bearer eyJ.x.y\n");
        let j: Value = serde_json::from_str(&text(Format::Json, &v)).unwrap();
        assert_eq!(j, v);
    }
}
