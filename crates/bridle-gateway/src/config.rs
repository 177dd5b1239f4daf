//! The gateway's YAML configuration. Unknown keys are errors; every error
//! names the file, line and column.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::GatewayError;
use crate::upstream::UpstreamError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where agents connect: `http://LISTEN/mcp` (`https://` with `tls`).
    pub listen: SocketAddr,
    /// Serve https with this PEM certificate chain and key:
    /// `{cert_file, key_file}`, both required. Read at start-up.
    #[serde(default)]
    pub tls: Option<bridle_tls::TlsFiles>,
    /// The URL agents use for the gateway's `/mcp` endpoint, when it is not
    /// `http(s)://LISTEN/mcp` (behind a proxy). It is the OAuth resource:
    /// tokens must be issued for it (`aud`).
    #[serde(default)]
    pub public_url: Option<String>,
    pub bridle_url: String,
    /// A PEM file of CA certificates trusted, besides the system's roots,
    /// for an `https://` `bridle_url` (a server whose certificate a private
    /// CA signed).
    #[serde(default)]
    pub bridle_ca_file: Option<PathBuf>,
    /// The environment variable holding the API key of a `pep` principal.
    #[serde(default = "default_pep_key_env")]
    pub pep_key_env: String,
    /// How long a call that needs an approval is held (default 45s: below
    /// the 60 s request timeout of the TypeScript SDK, so the agent gets the
    /// approval id instead of giving up on a call it cannot see again).
    #[serde(default, with = "duration")]
    pub approval_wait: Option<Duration>,
    /// How long one upstream request may take (default 30s).
    #[serde(default, with = "duration")]
    pub call_timeout: Option<Duration>,
    /// Token audiences accepted besides the public URL.
    #[serde(default)]
    pub accept_audiences: Vec<String>,
    pub upstreams: Vec<UpstreamConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    /// A stdio MCP server: program and arguments.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// A streamable HTTP MCP server.
    #[serde(default)]
    pub url: Option<String>,
    /// Prepended to the upstream's tool and prompt names: tool `echo` of
    /// prefix `everything.` is the action `everything.echo`.
    pub prefix: String,
    /// Headers sent upstream, valued from environment variables (never
    /// shown to agents): `{Authorization: TICKETS_TOKEN}`.
    #[serde(default)]
    pub headers_from_env: BTreeMap<String, String>,
}

/// Below common client request timeouts (the TypeScript SDK's is 60 s).
pub const DEFAULT_APPROVAL_WAIT: Duration = Duration::from_secs(45);

fn default_pep_key_env() -> String {
    "BRIDLE_PEP_KEY".into()
}

mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let parsed: jiff::SignedDuration = text.parse().map_err(|_| {
            serde::de::Error::custom(format!("`{text}` is not a duration like `60s` or `2m`"))
        })?;
        Duration::try_from(parsed)
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("`{text}` is negative")))
    }
}

/// How an upstream is reached.
#[derive(Debug, Clone)]
pub enum Transport {
    Stdio { program: String, args: Vec<String> },
    Http { url: String },
}

impl UpstreamConfig {
    pub fn transport(&self) -> Result<Transport, UpstreamError> {
        match (&self.command, &self.url) {
            (Some(cmd), None) => match cmd.split_first() {
                Some((program, args)) => Ok(Transport::Stdio {
                    program: program.clone(),
                    args: args.to_vec(),
                }),
                None => Err(UpstreamError::EmptyCommand),
            },
            (None, Some(url)) => Ok(Transport::Http { url: url.clone() }),
            _ => Err(UpstreamError::Transport),
        }
    }
}

/// The longest a call may be held and then run: the server takes a DPoP
/// proof the gateway admitted again for 10 minutes after it arrived.
const MAX_HOLD: Duration = Duration::from_secs(9 * 60);

impl Config {
    pub fn load(path: &Path) -> Result<Self, GatewayError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| GatewayError::Config(format!("{}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse and check; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, GatewayError> {
        let config: Self = serde_saphyr::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            GatewayError::Config(format!("{origin}{at}: {}", first_line(&e.to_string())))
        })?;
        let bad = |what: String| GatewayError::Config(format!("{origin}: {what}"));
        if config.approval_wait() + config.call_timeout() > MAX_HOLD {
            return Err(bad(format!(
                "`approval_wait` plus `call_timeout` may be at most {} minutes (a DPoP-bound call's proof is taken for 10 minutes after it arrived)",
                MAX_HOLD.as_secs() / 60
            )));
        }
        if config.upstreams.is_empty() {
            return Err(bad("`upstreams` is empty".into()));
        }
        for (i, u) in config.upstreams.iter().enumerate() {
            u.transport()
                .map_err(|e| bad(format!("upstreams[{i}] (`{}`): {e}", u.name)))?;
            let probe = format!("{}x", u.prefix);
            if !bridle_core::id::is_tool_name(&probe) {
                return Err(bad(format!(
                    "upstreams[{i}].prefix: `{}` does not make tool names (letters, digits and `_.:/-`)",
                    u.prefix
                )));
            }
            let before = config.upstreams.iter().take(i);
            if before.clone().any(|o| o.name == u.name) {
                return Err(bad(format!(
                    "upstreams[{i}].name: `{}` is repeated",
                    u.name
                )));
            }
            if before.clone().any(|o| o.prefix == u.prefix) {
                return Err(bad(format!(
                    "upstreams[{i}].prefix: `{}` is repeated",
                    u.prefix
                )));
            }
        }
        Ok(config)
    }

    /// The gateway's `/mcp` URL: the OAuth resource tokens must name.
    pub fn resource(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("{}://{}/mcp", self.scheme(), self.listen),
        }
    }

    /// `https` when the gateway serves TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    pub fn approval_wait(&self) -> Duration {
        self.approval_wait.unwrap_or(DEFAULT_APPROVAL_WAIT)
    }

    pub fn call_timeout(&self) -> Duration {
        self.call_timeout.unwrap_or(Duration::from_secs(30))
    }
}

/// The message alone: the location is reported as `file:line:col` already.
fn first_line(s: &str) -> &str {
    let line = s.lines().next().unwrap_or(s);
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line.split_once(": ") {
        Some((at, message)) if line.starts_with("line ") && at.contains(" column ") => message,
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen: 127.0.0.1:8090
bridle_url: http://127.0.0.1:8080
approval_wait: 2m
upstreams:
  - name: everything
    command: [npx, -y, "@modelcontextprotocol/server-everything"]
    prefix: everything.
  - name: tickets
    url: http://127.0.0.1:9000/mcp
    prefix: tickets.
    headers_from_env: { Authorization: TICKETS_TOKEN }
"#;

    #[test]
    fn parses_the_documented_example() {
        let c = Config::parse(GOOD, "gw.yaml").unwrap();
        assert_eq!(c.resource(), "http://127.0.0.1:8090/mcp");
        assert_eq!(c.approval_wait(), Duration::from_secs(120));
        assert_eq!(c.pep_key_env, "BRIDLE_PEP_KEY");
        assert!(matches!(
            c.upstreams[0].transport().unwrap(),
            Transport::Stdio { ref program, .. } if program == "npx"
        ));
        assert_eq!(
            c.upstreams[1].headers_from_env["Authorization"],
            "TICKETS_TOKEN"
        );
    }

    #[test]
    fn an_unknown_key_names_file_line_and_column() {
        let text = GOOD.replace("    prefix: tickets.", "    prefixx: tickets.");
        let e = Config::parse(&text, "gw.yaml").unwrap_err().to_string();
        assert!(
            e.starts_with("gw.yaml:11:5: unknown field `prefixx`"),
            "{e}"
        );
        assert!(e.contains("prefixx"), "{e}");
    }

    #[test]
    fn an_upstream_needs_exactly_one_transport() {
        let text = GOOD.replace("    url: http://127.0.0.1:9000/mcp\n", "");
        let e = Config::parse(&text, "gw.yaml").unwrap_err().to_string();
        assert!(e.contains("upstreams[1]"), "{e}");
    }

    #[test]
    fn tls_makes_the_resource_https_and_needs_both_files() {
        let text = GOOD.replace(
            "approval_wait: 2m\n",
            "approval_wait: 2m\ntls: {cert_file: gw.pem, key_file: gw.key}\nbridle_ca_file: ca.pem\n",
        );
        let c = Config::parse(&text, "gw.yaml").unwrap();
        assert_eq!(c.resource(), "https://127.0.0.1:8090/mcp");
        assert_eq!(c.bridle_ca_file.as_deref(), Some(Path::new("ca.pem")));
        let text = GOOD.replace(
            "approval_wait: 2m\n",
            "approval_wait: 2m\ntls:\n  cert_file: gw.pem\n",
        );
        let e = Config::parse(&text, "gw.yaml").unwrap_err().to_string();
        assert!(
            e.starts_with("gw.yaml:6:3: missing field `key_file`"),
            "{e}"
        );
        let text = GOOD.replace(
            "approval_wait: 2m\n",
            "approval_wait: 2m\ntls: {cert_file: a, key_file: b, ca_file: c}\n",
        );
        let e = Config::parse(&text, "gw.yaml").unwrap_err().to_string();
        assert!(e.contains("unknown field `ca_file`"), "{e}");
    }

    #[test]
    fn a_call_is_held_and_run_within_nine_minutes() {
        let text = GOOD.replace("approval_wait: 2m", "approval_wait: 9m");
        let e = Config::parse(&text, "gw.yaml").unwrap_err().to_string();
        assert!(e.contains("at most 9 minutes"), "{e}");
        let text = GOOD.replace("approval_wait: 2m", "approval_wait: 8m");
        assert!(Config::parse(&text, "gw.yaml").is_ok());
    }

    #[test]
    fn a_bad_duration_is_an_error() {
        let text = GOOD.replace("2m", "soon");
        let e = Config::parse(&text, "gw.yaml").unwrap_err().to_string();
        assert!(e.contains("soon"), "{e}");
    }
}
