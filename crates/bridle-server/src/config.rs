//! Configuration: defaults < TOML file < `BRIDLE_` environment variables.
//! Unknown keys in the file are warned about, never silently dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A secret text of the configuration (an API key, a key-encryption key):
/// it never prints and is wiped when dropped.
pub type Secret = bridle_core::secret::Secret<String>;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    pub listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://…`.
    pub db: String,
    /// How long the store waits on the database before a request is
    /// answered 503 ([`DatabaseConfig`]).
    pub database: DatabaseConfig,
    /// TLS for the listener (`[tls]`; [`TlsConfig`]).
    pub tls: TlsConfig,
    /// The `iss` of every token; defaults to `http://{listen}`
    /// (`https://{listen}` with TLS).
    pub issuer: Option<String>,
    /// The default `aud` when a token request names no `resource`.
    pub audience: Option<String>,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// URLs that receive a CloudEvents notification for each new approval.
    pub webhooks: Vec<String>,
    /// How long a verified access token is trusted without asking the store
    /// again, in milliseconds (0 turns the cache off). Revocations and
    /// suspensions made on another replica take at most this long to show.
    pub token_cache_ms: u64,
    /// Memory for compiled manifests, in MiB (estimated; least recently used
    /// out first). A record not cached is compiled again on its next use.
    pub compiled_cache_mib: u64,
    /// The Envoy ext_authz endpoint's route table ([`crate::ext_authz`]).
    pub ext_authz: crate::ext_authz::ExtAuthzConfig,
    /// Signed audit checkpoints and their witnesses ([`crate::checkpoints`]).
    pub audit: AuditConfig,
    /// Throttling and auditing of failed authentication ([`crate::throttle`]).
    pub auth_throttle: crate::throttle::ThrottleConfig,
    /// Change control: which environments need a second person's approval
    /// for a widening manifest change or a new agent ([`ChangeControl`]).
    pub change_control: ChangeControl,
    /// Continuous posture: how often findings are swept and the rules'
    /// thresholds ([`crate::posture`]).
    pub posture: crate::posture::PostureConfig,
    /// The web console's sessions (`[console]`; [`crate::console::ConsoleConfig`]).
    pub console: crate::console::ConsoleConfig,
    /// Interactive OAuth clients (`[oauth]`; [`OAuthConfig`]).
    pub oauth: OAuthConfig,
    /// A file holding the key-encryption key that seals the private keys
    /// in the store ([`crate::kek`]; also `BRIDLE_KEY_ENCRYPTION_KEY_FILE`).
    pub key_encryption_key_file: Option<PathBuf>,
    /// The key-encryption key itself (`BRIDLE_KEY_ENCRYPTION_KEY`, 32 bytes
    /// in base64); it wins over `key_encryption_key_file`. Never read from
    /// the configuration file.
    #[serde(skip)]
    pub key_encryption_key: Option<Secret>,
    /// Bootstrap admin key (`BRIDLE_ADMIN_TOKEN`).
    #[serde(skip)]
    pub admin_token: Option<Secret>,
    /// A bearer token that may read `GET /metrics` and nothing else, for a
    /// Prometheus scraper without an API key (`BRIDLE_METRICS_TOKEN`, or
    /// `metrics_token` in the file); unset, only `admin` and `auditor` may.
    pub metrics_token: Option<Secret>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            db: "sqlite://./bridle-data/bridle.db".into(),
            database: DatabaseConfig::default(),
            tls: TlsConfig::default(),
            issuer: None,
            audience: None,
            body_limit: 1 << 20,
            webhooks: Vec::new(),
            token_cache_ms: 500,
            compiled_cache_mib: 256,
            ext_authz: crate::ext_authz::ExtAuthzConfig::default(),
            audit: AuditConfig::default(),
            auth_throttle: crate::throttle::ThrottleConfig::default(),
            change_control: ChangeControl::default(),
            posture: crate::posture::PostureConfig::default(),
            console: crate::console::ConsoleConfig::default(),
            oauth: OAuthConfig::default(),
            key_encryption_key_file: None,
            key_encryption_key: None,
            admin_token: None,
            metrics_token: None,
        }
    }
}

const KEYS: &[&str] = &[
    "listen",
    "db",
    "database",
    "tls",
    "issuer",
    "audience",
    "body_limit",
    "webhooks",
    "token_cache_ms",
    "compiled_cache_mib",
    "ext_authz",
    "audit",
    "auth_throttle",
    "change_control",
    "posture",
    "console",
    "oauth",
    "key_encryption_key_file",
    "metrics_token",
];

/// `[change_control]`: in these environments a manifest change that widens
/// what an agent may do, or a new agent, is proposed rather than applied,
/// and comes into force only when someone other than its submitter approves
/// it. Unknown keys are errors: a mistyped environment must not silently
/// switch the control off.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChangeControl {
    /// `dev`, `staging`, `prod`; empty turns change control off.
    pub environments: Vec<String>,
    /// Who may approve: `role:admin`, `group:NAME` or a principal id.
    pub approvers: Vec<String>,
    /// Approvals needed (at least 1).
    pub min_approvals: i64,
    /// How long a proposal waits before it expires and is discarded.
    pub ttl: String,
}

impl Default for ChangeControl {
    fn default() -> Self {
        Self {
            environments: vec!["staging".into(), "prod".into()],
            approvers: vec!["role:admin".into()],
            min_approvals: 1,
            ttl: "72h".into(),
        }
    }
}

impl ChangeControl {
    /// Whether a manifest for `environment` is under change control.
    pub fn covers(&self, environment: &str) -> bool {
        self.environments.iter().any(|e| e == environment)
    }

    /// How long a proposal waits.
    pub fn ttl(&self) -> jiff::SignedDuration {
        bridle_core::manifest::units::parse_duration(&self.ttl)
            .unwrap_or(jiff::SignedDuration::from_hours(72))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: String| Err(ConfigError::ChangeControl(what));
        for e in &self.environments {
            if !matches!(e.as_str(), "dev" | "staging" | "prod") {
                return bad(format!(
                    "`environments` entry `{e}`: expected dev, staging or prod"
                ));
            }
        }
        if self.approvers.is_empty() {
            return bad("`approvers` is empty: nobody could approve a change".into());
        }
        for a in &self.approvers {
            let valid = match a.split_once(':') {
                Some(("role", role)) => role == "admin",
                Some(("group", group)) => group.parse::<bridle_core::id::GroupName>().is_ok(),
                Some(_) => false,
                None => a.parse::<bridle_core::id::PrincipalId>().is_ok(),
            };
            if !valid {
                return bad(format!(
                    "`approvers` entry `{a}`: expected `role:admin`, `group:NAME` or a principal id"
                ));
            }
        }
        if self.min_approvals < 1 {
            return bad("`min_approvals` must be at least 1".into());
        }
        match bridle_core::manifest::units::parse_duration(&self.ttl) {
            Ok(d)
                if d > jiff::SignedDuration::ZERO
                    && d <= jiff::SignedDuration::from_hours(24 * 30) =>
            {
                Ok(())
            }
            _ => bad(format!(
                "`ttl` `{}`: expected a duration from 1s to 30d",
                self.ttl
            )),
        }
    }
}

/// `[oauth]`: the authorization code grant for interactive clients, which
/// identify themselves by the URL of a client metadata document. Unknown
/// keys are errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthConfig {
    /// Development only: also fetch client metadata documents over plain
    /// `http://` from a loopback host (`localhost`, `127.0.0.0/8`, `::1`),
    /// and let `https://` ones resolve to loopback addresses. Off, a
    /// document is fetched only over https from a public address. `bridle
    /// demo` turns it on when it listens on a loopback address.
    pub client_metadata_allow_loopback_http: bool,
}

/// `[database]`: the store's timeouts, in milliseconds, so that a database
/// that is down, read-only or hanging turns into a quick 503 (and the
/// server recovers on its own once it is back) rather than requests that
/// hang. Unknown keys are errors.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Longest wait for a pooled connection, opening one included (both
    /// backends; `BRIDLE_DB_ACQUIRE_TIMEOUT_MS`).
    pub acquire_timeout_ms: u64,
    /// Longest one SQL statement may run (PostgreSQL `statement_timeout`;
    /// `BRIDLE_DB_STATEMENT_TIMEOUT_MS`).
    pub statement_timeout_ms: u64,
    /// Longest wait for a row lock (PostgreSQL `lock_timeout`;
    /// `BRIDLE_DB_LOCK_TIMEOUT_MS`).
    pub lock_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        let t = bridle_store::StoreTimeouts::default();
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            acquire_timeout_ms: ms(t.acquire),
            statement_timeout_ms: ms(t.statement),
            lock_timeout_ms: ms(t.lock),
        }
    }
}

impl DatabaseConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.acquire_timeout_ms == 0 {
            return Err(ConfigError::AtLeastOne("database.acquire_timeout_ms"));
        }
        if self.statement_timeout_ms == 0 {
            return Err(ConfigError::AtLeastOne("database.statement_timeout_ms"));
        }
        if self.lock_timeout_ms == 0 {
            return Err(ConfigError::AtLeastOne("database.lock_timeout_ms"));
        }
        Ok(())
    }

    /// The timeouts the store is connected with.
    pub fn timeouts(&self) -> bridle_store::StoreTimeouts {
        use std::time::Duration;
        bridle_store::StoreTimeouts {
            acquire: Duration::from_millis(self.acquire_timeout_ms),
            statement: Duration::from_millis(self.statement_timeout_ms),
            lock: Duration::from_millis(self.lock_timeout_ms),
        }
    }
}

/// `[tls]`: serve https with this certificate chain and key (PEM files;
/// also `BRIDLE_TLS_CERT_FILE`, `BRIDLE_TLS_KEY_FILE`, `--tls-cert`,
/// `--tls-key`). Both or neither; without them the server speaks plain
/// http. The files are read at start-up: a new certificate needs a restart.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl TlsConfig {
    /// The files to serve TLS with, or `None` for plain http; one given
    /// without the other is an error naming the missing one.
    pub fn files(&self) -> Result<Option<bridle_tls::TlsFiles>, ConfigError> {
        match (&self.cert_file, &self.key_file) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(bridle_tls::TlsFiles {
                cert_file: cert.clone(),
                key_file: key.clone(),
            })),
            (Some(_), None) => Err(ConfigError::TlsHalf {
                given: "certificate",
                missing: "key: `tls.key_file`, `BRIDLE_TLS_KEY_FILE` or `--tls-key`",
            }),
            (None, Some(_)) => Err(ConfigError::TlsHalf {
                given: "key",
                missing: "certificate: `tls.cert_file`, `BRIDLE_TLS_CERT_FILE` or `--tls-cert`",
            }),
        }
    }

    /// Whether the listener is meant to speak https.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() || self.key_file.is_some()
    }
}

/// `[audit]`: how often the chain's head is signed, and who else keeps a copy.
/// Unknown keys here are errors: a mistyped witness must not silently
/// disappear.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Sign a checkpoint after this many new events (at least 1).
    pub checkpoint_every: u64,
    /// ...or after this many seconds when there are new events (at least 1).
    pub checkpoint_seconds: u64,
    /// Where each checkpoint is also sent: an `http://` or `https://` URL
    /// (POSTed, in the background, with retries) or a file path (one JSON
    /// line appended per checkpoint).
    pub witnesses: Vec<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_every: 1000,
            checkpoint_seconds: 60,
            witnesses: Vec::new(),
        }
    }
}

impl AuditConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.checkpoint_every == 0 {
            return Err(ConfigError::AtLeastOne("audit.checkpoint_every"));
        }
        if self.checkpoint_seconds == 0 {
            return Err(ConfigError::AtLeastOne("audit.checkpoint_seconds"));
        }
        if self.witnesses.iter().any(|w| w.trim().is_empty()) {
            return Err(ConfigError::EmptyWitness);
        }
        Ok(())
    }
}

/// Why the configuration cannot be used; each names the file or variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {error}", path.display())]
    Toml {
        path: PathBuf,
        error: toml::de::Error,
    },
    #[error(
        "{}: `key_encryption_key` cannot be set in the configuration file: put the key in a file of its own (`key_encryption_key_file`) or in `BRIDLE_KEY_ENCRYPTION_KEY`",
        path.display()
    )]
    KekInFile { path: PathBuf },
    #[error("{}: {error}", path.display())]
    ExtAuthz {
        path: PathBuf,
        error: crate::ext_authz::ExtAuthzConfigError,
    },
    #[error("{}: {error}", path.display())]
    Throttle {
        path: PathBuf,
        error: crate::throttle::ThrottleConfigError,
    },
    #[error("{}: {error}", path.display())]
    Posture {
        path: PathBuf,
        error: crate::posture::PostureConfigError,
    },
    #[error("BRIDLE_POSTURE_EVERY `{value}`: {error}")]
    PostureEvery { value: String, error: String },
    #[error("BRIDLE_LISTEN `{value}`: {error}")]
    Listen {
        value: String,
        error: std::net::AddrParseError,
    },
    #[error("{var} `{value}`: {error}")]
    Number {
        var: &'static str,
        value: String,
        error: std::num::ParseIntError,
    },
    #[error("`{0}` must be at least 1")]
    AtLeastOne(&'static str),
    #[error("`audit.witnesses` has an empty entry")]
    EmptyWitness,
    #[error("[change_control] {0}")]
    ChangeControl(String),
    #[error("TLS: a {given} is given but no {missing}")]
    TlsHalf {
        given: &'static str,
        missing: &'static str,
    },
}

impl Config {
    /// Load from an optional TOML file, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let toml_error = |error| ConfigError::Toml {
                    path: path.to_owned(),
                    error,
                };
                let table: toml::Table = toml::from_str(&text).map_err(toml_error)?;
                if table.contains_key("key_encryption_key") {
                    return Err(ConfigError::KekInFile {
                        path: path.to_owned(),
                    });
                }
                for key in table.keys().filter(|k| !KEYS.contains(&k.as_str())) {
                    tracing::warn!(file = %path.display(), key = %key, "unknown configuration key ignored");
                }
                let config = toml::from_str::<Config>(&text).map_err(toml_error)?;
                config
                    .ext_authz
                    .validate()
                    .map_err(|error| ConfigError::ExtAuthz {
                        path: path.to_owned(),
                        error,
                    })?;
                config
                    .auth_throttle
                    .validate()
                    .map_err(|error| ConfigError::Throttle {
                        path: path.to_owned(),
                        error,
                    })?;
                config
                    .posture
                    .validate()
                    .map_err(|error| ConfigError::Posture {
                        path: path.to_owned(),
                        error,
                    })?;
                config
            }
            None => Config::default(),
        };
        if let Ok(v) = std::env::var("BRIDLE_LISTEN") {
            config.listen = v.parse().map_err(|error| ConfigError::Listen {
                value: v.clone(),
                error,
            })?;
        }
        if let Ok(v) = std::env::var("BRIDLE_DB") {
            config.db = v;
        }
        for (var, field) in [
            (
                "BRIDLE_DB_ACQUIRE_TIMEOUT_MS",
                &mut config.database.acquire_timeout_ms,
            ),
            (
                "BRIDLE_DB_STATEMENT_TIMEOUT_MS",
                &mut config.database.statement_timeout_ms,
            ),
            (
                "BRIDLE_DB_LOCK_TIMEOUT_MS",
                &mut config.database.lock_timeout_ms,
            ),
        ] {
            if let Ok(v) = std::env::var(var) {
                *field = v.parse().map_err(|error| ConfigError::Number {
                    var,
                    value: v.clone(),
                    error,
                })?;
            }
        }
        config.database.validate()?;
        if let Ok(v) = std::env::var("BRIDLE_TLS_CERT_FILE")
            && !v.is_empty()
        {
            config.tls.cert_file = Some(PathBuf::from(v));
        }
        if let Ok(v) = std::env::var("BRIDLE_TLS_KEY_FILE")
            && !v.is_empty()
        {
            config.tls.key_file = Some(PathBuf::from(v));
        }
        if let Ok(v) = std::env::var("BRIDLE_ISSUER") {
            config.issuer = Some(v);
        }
        if let Ok(v) = std::env::var("BRIDLE_WEBHOOKS") {
            config.webhooks = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Ok(v) = std::env::var("BRIDLE_AUDIT_CHECKPOINT_EVERY") {
            config.audit.checkpoint_every = v.parse().map_err(|error| ConfigError::Number {
                var: "BRIDLE_AUDIT_CHECKPOINT_EVERY",
                value: v.clone(),
                error,
            })?;
        }
        if let Ok(v) = std::env::var("BRIDLE_AUDIT_CHECKPOINT_SECONDS") {
            config.audit.checkpoint_seconds = v.parse().map_err(|error| ConfigError::Number {
                var: "BRIDLE_AUDIT_CHECKPOINT_SECONDS",
                value: v.clone(),
                error,
            })?;
        }
        if let Ok(v) = std::env::var("BRIDLE_AUDIT_WITNESSES") {
            config.audit.witnesses = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        config.audit.validate()?;
        // A comma list; empty turns change control off (as for a test
        // deployment that applies everything at once).
        if let Ok(v) = std::env::var("BRIDLE_CHANGE_CONTROL_ENVIRONMENTS") {
            config.change_control.environments = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        config.change_control.validate()?;
        if let Ok(v) = std::env::var("BRIDLE_POSTURE_EVERY")
            && !v.is_empty()
        {
            config.posture.every = bridle_core::manifest::units::parse_duration(&v)
                .ok()
                .filter(|d| d.is_positive())
                .ok_or_else(|| ConfigError::PostureEvery {
                    value: v.clone(),
                    error: "a positive duration such as `15m`".into(),
                })?;
        }
        if let Ok(v) = std::env::var("BRIDLE_KEY_ENCRYPTION_KEY_FILE")
            && !v.is_empty()
        {
            config.key_encryption_key_file = Some(PathBuf::from(v));
        }
        if let Ok(v) = std::env::var(crate::kek::ENV)
            && !v.is_empty()
        {
            config.key_encryption_key = Some(Secret::new(v));
        }
        if let Ok(v) = std::env::var("BRIDLE_ADMIN_TOKEN")
            && !v.is_empty()
        {
            config.admin_token = Some(Secret::new(v));
        }
        if let Ok(v) = std::env::var("BRIDLE_METRICS_TOKEN")
            && !v.is_empty()
        {
            config.metrics_token = Some(Secret::new(v));
        }
        // An empty token would be no secret: the same as none.
        if config
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.expose().trim().is_empty())
        {
            config.metrics_token = None;
        }
        Ok(config)
    }

    /// `https` when the listener speaks TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.enabled() { "https" } else { "http" }
    }

    /// The listener's own URL: `http://{listen}` or `https://{listen}`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.listen)
    }

    pub fn issuer(&self) -> String {
        self.issuer.clone().unwrap_or_else(|| self.base_url())
    }

    pub fn audience(&self) -> String {
        self.audience.clone().unwrap_or_else(|| self.issuer())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_token_is_a_key_of_the_file_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bridle.toml");
        std::fs::write(&file, "metrics_token = \"mt_from-the-file\"\n").unwrap();
        let config = Config::load(Some(&file)).unwrap();
        let token = config.metrics_token.as_ref().unwrap();
        assert_eq!(token.expose(), "mt_from-the-file");
        assert!(KEYS.contains(&"metrics_token"));
        assert!(!format!("{config:?}").contains("mt_from-the-file"));

        std::fs::write(&file, "metrics_token = \" \"\n").unwrap();
        assert!(Config::load(Some(&file)).unwrap().metrics_token.is_none());
    }
}
