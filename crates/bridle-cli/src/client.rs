//! The HTTP client behind the operator commands: blocking calls (each on a
//! current-thread runtime), JSON in and out, and `application/problem+json`
//! (RFC 9457) answers turned into [`ClientError::Problem`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::problem::Problem;

pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Where the server is and whom to act as. `global`, so the options may
/// follow the subcommand (`bridle agent list --url …`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Remote {
    /// The Bridle server.
    #[arg(long, env = "BRIDLE_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
    /// Your API key, sent as `Authorization: Bearer …`.
    #[arg(long, env = "BRIDLE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<Token>,
    /// PEM certificates to trust for an https `--url` besides the system's
    /// (a private CA, or the server's own certificate).
    #[arg(long, env = "BRIDLE_CA_FILE", value_name = "PEM", global = true)]
    pub ca_file: Option<std::path::PathBuf>,
}

/// An API key. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// The token's text, to send it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Token {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// Found on this machine (a bad file, the offline store); the message
    /// is complete.
    #[error("{0}")]
    Local(String),
    #[error("invalid --url `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach Bridle at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{0}")]
    Problem(Problem),
    #[error("unexpected answer from {url}: {reason}")]
    Unexpected { url: String, reason: String },
    #[error("cannot start the HTTP client: {0}")]
    Setup(String),
}

/// Install ring as the process's TLS provider (reqwest is built without
/// one, so no C toolchain beyond ring's is needed). Idempotent.
pub(crate) fn install_tls_provider() {
    bridle_tls::install_provider();
}

/// A blocking client for one Bridle server.
pub(crate) struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    base: Url,
    /// `--url` as given, for messages.
    shown: String,
    token: Option<Token>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

enum Body {
    None,
    Json(Value),
    Raw(&'static str, String),
    /// Form-encoded, authenticated with HTTP Basic (an OAuth client's id
    /// and secret) instead of the bearer token.
    Form {
        fields: Vec<(&'static str, String)>,
        user: String,
        password: Token,
    },
}

impl Client {
    pub(crate) fn new(remote: &Remote) -> Result<Self, ClientError> {
        let base = parse_base(&remote.url)?;
        install_tls_provider();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("bridle-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60));
        if let Some(path) = &remote.ca_file {
            let certs = bridle_tls::load_certs(path)
                .map_err(|e| ClientError::Local(format!("--ca-file: {e}")))?;
            for der in certs {
                let cert = reqwest::Certificate::from_der(&der).map_err(|e| {
                    ClientError::Local(format!("--ca-file {}: {}", path.display(), causes(&e)))
                })?;
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Setup(causes(&e)))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let token = remote.token.clone().filter(|t| !t.0.is_empty());
        Ok(Self {
            http,
            runtime,
            base,
            shown: remote.url.clone(),
            token,
        })
    }

    /// `GET` the path (one segment per element, each percent-encoded) with
    /// the query pairs.
    pub(crate) fn get(
        &self,
        path: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        self.send(Method::GET, path, query, Body::None)
            .map(|(_, v)| v)
    }

    pub(crate) fn post(&self, path: &[&str], body: Value) -> Result<Value, ClientError> {
        self.send(Method::POST, path, &[], Body::Json(body))
            .map(|(_, v)| v)
    }

    /// `POST` a raw body with query pairs.
    pub(crate) fn post_raw(
        &self,
        path: &[&str],
        query: &[(&str, String)],
        content_type: &'static str,
        body: String,
    ) -> Result<Value, ClientError> {
        self.send(Method::POST, path, query, Body::Raw(content_type, body))
            .map(|(_, v)| v)
    }

    /// `POST` a form authenticated as an OAuth client (`client_secret_basic`).
    pub(crate) fn post_form(
        &self,
        path: &[&str],
        fields: Vec<(&'static str, String)>,
        user: &str,
        password: Token,
    ) -> Result<Value, ClientError> {
        let body = Body::Form {
            fields,
            user: user.to_owned(),
            password,
        };
        self.send(Method::POST, path, &[], body).map(|(_, v)| v)
    }

    /// `PUT` a raw body; returns the status too (201 created, 200 updated).
    pub(crate) fn put(
        &self,
        path: &[&str],
        content_type: &'static str,
        body: String,
    ) -> Result<(StatusCode, Value), ClientError> {
        self.send(Method::PUT, path, &[], Body::Raw(content_type, body))
    }

    pub(crate) fn url(&self, path: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path);
        }
        url
    }

    /// `GET` a body that is text, not JSON (a rendered report).
    pub(crate) fn get_text(
        &self,
        path: &[&str],
        query: &[(&str, String)],
    ) -> Result<String, ClientError> {
        self.fetch(Method::GET, path, query, Body::None)
            .map(|(_, text, _)| text)
    }

    fn send(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Body,
    ) -> Result<(StatusCode, Value), ClientError> {
        let (status, text, url) = self.fetch(method, path, query, body)?;
        if text.trim().is_empty() {
            return Ok((status, Value::Null));
        }
        let value = serde_json::from_str(&text).map_err(|e| ClientError::Unexpected {
            url: url.to_string(),
            reason: format!("the body is not JSON: {e}"),
        })?;
        Ok((status, value))
    }

    /// Send the request; a status that is not a success is the problem it
    /// carries.
    fn fetch(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Body,
    ) -> Result<(StatusCode, String, Url), ClientError> {
        let url = self.url(path);
        // An OAuth client authenticates itself; no API key would help.
        let as_client = matches!(body, Body::Form { .. });
        let mut req = self.http.request(method, url.clone());
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(Token(t)) = &self.token
            && !as_client
        {
            req = req.bearer_auth(t);
        }
        req = match body {
            Body::None => req,
            Body::Form {
                fields,
                user,
                password: Token(password),
            } => req.basic_auth(user, Some(password)).form(&fields),
            Body::Json(v) => req.json(&v),
            Body::Raw(ct, text) => req.header(reqwest::header::CONTENT_TYPE, ct).body(text),
        };
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            url: self.shown.clone(),
            reason: causes(&e),
        };
        let (status, text) = self.runtime.block_on(async {
            let resp = req.send().await.map_err(unreachable)?;
            let status = resp.status();
            let text = resp.text().await.map_err(unreachable)?;
            Ok::<_, ClientError>((status, text))
        })?;
        if !status.is_success() {
            let mut problem = Problem::from_response(status, &text);
            if status == StatusCode::UNAUTHORIZED && self.token.is_none() && !as_client {
                problem.hint = Some("pass --token or set BRIDLE_TOKEN to your API key".into());
            }
            return Err(ClientError::Problem(problem));
        }
        Ok((status, text, url))
    }
}

fn parse_base(raw: &str) -> Result<Url, ClientError> {
    let bad = |reason: &str| ClientError::BadUrl {
        url: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() || url.host().is_none() {
        return Err(bad("expected `http://HOST[:PORT]` or `https://…`"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a server URL has no query or fragment"));
    }
    Ok(url)
}

/// What went wrong underneath, on one line: reqwest's own message only says
/// "error sending request for url (…)", and hyper's "client error
/// (Connect)" says nothing the cause does not.
fn causes(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.starts_with("client error (") && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// Query pairs without the options that were not given.
pub(crate) fn query<'a>(pairs: &[(&'a str, Option<String>)]) -> Vec<(&'a str, String)> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: &str) -> Remote {
        Remote {
            url: url.into(),
            token: Some(Token("bk_secret".into())),
            ca_file: None,
        }
    }

    #[test]
    fn paths_are_percent_encoded_under_the_base_path() {
        let c = Client::new(&remote("http://127.0.0.1:8080")).unwrap();
        assert_eq!(
            c.url(&["v1", "agents", "a b/c"]).as_str(),
            "http://127.0.0.1:8080/v1/agents/a%20b%2Fc"
        );
        let c = Client::new(&remote("http://example.com/bridle/")).unwrap();
        assert_eq!(
            c.url(&["v1", "agents"]).as_str(),
            "http://example.com/bridle/v1/agents"
        );
    }

    #[test]
    fn a_url_without_scheme_is_refused() {
        for bad in [
            "127.0.0.1:8080",
            "localhost:8080",
            "ftp://x",
            "http://h/?q=1",
        ] {
            assert!(
                matches!(parse_base(bad), Err(ClientError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let c = Client::new(&remote("http://127.0.0.1:8080")).unwrap();
        let r = remote("http://127.0.0.1:8080");
        for text in [format!("{c:?}"), format!("{r:?}")] {
            assert!(!text.contains("bk_secret"), "{text}");
        }
    }

    #[test]
    fn a_closed_port_is_reported_as_unreachable() {
        // Bind then drop, so the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = Client::new(&remote(&format!("http://127.0.0.1:{port}"))).unwrap();
        let err = c.get(&["v1", "agents"], &[]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot reach Bridle at http://127.0.0.1:{port}: ")),
            "{text}"
        );
        assert!(!text.contains("bk_secret"), "{text}");
    }

    #[test]
    fn only_given_options_become_query_pairs() {
        assert_eq!(
            query(&[("agent", Some("x".into())), ("type", None)]),
            vec![("agent", "x".to_owned())]
        );
    }
}
