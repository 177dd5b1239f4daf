//! `bridle principal`: create and deactivate the humans (and PEPs) that use
//! the API.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::Output;
use crate::client::{Client, ClientError, Remote};
use crate::output::{cell, fields, finish, render};

#[derive(Debug, clap::Args)]
pub(crate) struct PrincipalArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: PrincipalCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    Admin,
    Auditor,
    Pep,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Pep => "pep",
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum PrincipalCommand {
    /// Create a principal and its API key (shown once).
    Create {
        id: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// A role (repeatable).
        #[arg(long = "role", value_enum)]
        roles: Vec<Role>,
        /// An approver group (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Deactivate a principal: their API keys stop working and the agents
    /// they own become `orphaned`.
    Deactivate {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

pub(crate) fn run(args: &PrincipalArgs) -> ExitCode {
    finish(execute(args))
}

fn execute(args: &PrincipalArgs) -> Result<String, ClientError> {
    let client = Client::new(&args.remote)?;
    match &args.command {
        PrincipalCommand::Create {
            id,
            name,
            roles,
            groups,
            output,
        } => {
            let v = client.post(&["v1", "principals"], create_body(id, name, roles, groups))?;
            eprintln!("warning: the API key is shown once; store it now");
            Ok(render(*output, &v, |v| {
                fields(&[("id", cell(&v["id"])), ("api_key", cell(&v["api_key"]))])
            }))
        }
        PrincipalCommand::Deactivate { id, output } => {
            let v = client.post(&["v1", "principals", id, "deactivate"], json!({}))?;
            Ok(render(*output, &v, deactivated_text))
        }
    }
}

fn create_body(id: &str, name: &Option<String>, roles: &[Role], groups: &[String]) -> Value {
    let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    match name {
        Some(n) => json!({"id": id, "roles": roles, "groups": groups, "name": n}),
        None => json!({"id": id, "roles": roles, "groups": groups}),
    }
}

fn deactivated_text(v: &Value) -> String {
    let mut out = format!("deactivated `{}`\n", cell(&v["id"]));
    if let Some(agents) = v["orphaned_agents"].as_array().filter(|a| !a.is_empty()) {
        out.push_str(&format!(
            "now orphaned (no active owner): {}\n",
            cell(&Value::Array(agents.clone()))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> PrincipalCommand {
        let mut argv = vec!["bridle", "principal"];
        argv.extend(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Principal(p) => p.command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_takes_repeated_roles_and_groups_into_the_body() {
        let PrincipalCommand::Create {
            id,
            name,
            roles,
            groups,
            ..
        } = parse(&[
            "create",
            "frank",
            "--name",
            "Frank",
            "--role",
            "auditor",
            "--role",
            "pep",
            "--group",
            "finance-approvers",
        ])
        else {
            panic!("not create");
        };
        assert_eq!(
            create_body(&id, &name, &roles, &groups),
            json!({"id": "frank", "name": "Frank", "roles": ["auditor", "pep"], "groups": ["finance-approvers"]})
        );
    }

    #[test]
    fn unknown_roles_are_refused() {
        assert!(
            Cli::try_parse_from(["bridle", "principal", "create", "x", "--role", "root"]).is_err()
        );
    }

    #[test]
    fn deactivation_names_the_orphaned_agents() {
        assert_eq!(
            deactivated_text(
                &json!({"id": "bob", "active": false, "orphaned_agents": ["swe-bot"]})
            ),
            "deactivated `bob`\nnow orphaned (no active owner): swe-bot\n"
        );
        assert!(matches!(
            parse(&["deactivate", "bob"]),
            PrincipalCommand::Deactivate { .. }
        ));
    }
}
