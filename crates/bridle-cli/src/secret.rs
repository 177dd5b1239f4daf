//! Secrets the CLI is handed (an OAuth client secret, an agent's access
//! token): from a file or an environment variable, never only on the
//! command line, where `ps` and the shell's history would show them.

use std::io::Read as _;
use std::path::Path;

use crate::client::{ClientError, Token};

/// The secret in `file` (`-` reads standard input), else in the
/// environment variable `env`, else none. Surrounding whitespace (the
/// newline `echo` adds) is not part of it; an empty file is an error.
pub(crate) fn read(file: Option<&Path>, env: &str) -> Result<Option<Token>, ClientError> {
    match file {
        Some(path) => {
            let name = path.display();
            let mut text = String::new();
            let read = if path == Path::new("-") {
                std::io::stdin().read_to_string(&mut text).map(|_| ())
            } else {
                std::fs::read_to_string(path).map(|t| text = t)
            };
            read.map_err(|e| ClientError::Local(format!("cannot read `{name}`: {e}")))?;
            let secret = text.trim();
            if secret.is_empty() {
                return Err(ClientError::Local(format!("`{name}` is empty")));
            }
            Ok(secret.parse().ok())
        }
        None => Ok(std::env::var(env)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .and_then(|v| v.parse().ok())),
    }
}

/// The agent's access token, for the commands an agent runs itself
/// (`bridle decide`, `bridle agent elevation request`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct AgentToken {
    /// A file holding the agent's access token (`-`: standard input);
    /// otherwise `BRIDLE_AGENT_TOKEN` is used. `bridle token` prints one.
    #[arg(long, value_name = "FILE", global = true)]
    pub agent_token_file: Option<std::path::PathBuf>,
}

pub(crate) const AGENT_TOKEN_ENV: &str = "BRIDLE_AGENT_TOKEN";

impl AgentToken {
    pub(crate) fn read(&self) -> Result<Option<Token>, ClientError> {
        read(self.agent_token_file.as_deref(), AGENT_TOKEN_ENV)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_wins_and_loses_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").unwrap();
        let t = read(Some(&path), "BRIDLE_TEST_UNSET_SECRET_VAR").unwrap();
        assert_eq!(t.unwrap().expose(), "s3cret");
        std::fs::write(&path, "\n").unwrap();
        let Err(ClientError::Local(msg)) = read(Some(&path), "X") else {
            panic!("an empty file must be refused");
        };
        assert_eq!(msg, format!("`{}` is empty", path.display()));
        let missing = dir.path().join("nope");
        let Err(ClientError::Local(msg)) = read(Some(&missing), "X") else {
            panic!("a missing file must be refused");
        };
        assert!(
            msg.starts_with(&format!("cannot read `{}`", missing.display())),
            "{msg}"
        );
        assert!(
            read(None, "BRIDLE_TEST_UNSET_SECRET_VAR")
                .unwrap()
                .is_none()
        );
    }
}
