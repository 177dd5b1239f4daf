//! The in-process harness: the real server (`bridle_server::start` +
//! `serve_on`) on a port-0 listener, a fresh database per test (a temp SQLite
//! file, or a new PostgreSQL database on the server of
//! `bridle_test_postgres::url`), and a small HTTP client around `reqwest`.
#![allow(dead_code, reason = "not every suite uses every helper")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bridle_server::{Config, Secret};
use serde_json::{Value, json};

/// Runs one test body on SQLite and on PostgreSQL. The body is an
/// `async fn(Server)`; an optional second argument adjusts the `Config`.
macro_rules! on_both {
    ($name:ident) => {
        on_both!($name, |_config: &mut bridle_server::Config| {});
    };
    ($name:ident, $tweak:expr) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let server =
                    crate::common::Server::start(crate::common::Backend::Sqlite, $tweak).await;
                super::$name(server).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let server =
                    crate::common::Server::start(crate::common::Backend::Postgres, $tweak).await;
                super::$name(server).await;
            }
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const ADMIN_KEY: &str = "bk_test-admin-key-0123456789abcdef";

/// The key-encryption key every test server is given (32 bytes, base64).
pub const KEK: &str = "i7NZYJ0V7TVxef1lq/w11ySLxep4oX/pnyPnatshHgQ=";

/// A running server with its own database.
pub struct Server {
    /// The server's state, for what only the process can see (parked
    /// long-polls).
    pub state: bridle_server::AppState,
    pub base: String,
    pub http: reqwest::Client,
    pub backend: Backend,
    pub db_url: String,
    /// The certificate the server speaks https with ([`Server::start_https`]).
    pub tls: Option<TestCert>,
    _dir: Option<tempfile::TempDir>,
}

/// An HTTP answer: status, content type, raw text and (when it parses) JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub text: String,
    pub json: Value,
}

impl Resp {
    /// Assert the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Assert an RFC 9457 problem with `status` and its required members.
    #[track_caller]
    pub fn problem(self, status: u16) -> Self {
        let r = self.expect(status);
        assert_eq!(r.content_type, "application/problem+json", "{}", r.text);
        for member in ["type", "title", "detail"] {
            assert!(
                r.json[member].as_str().is_some_and(|s| !s.is_empty()),
                "problem without `{member}`: {}",
                r.text
            );
        }
        assert_eq!(r.json["status"], status, "{}", r.text);
        r
    }
}

impl std::ops::Index<&str> for Resp {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        &self.json[key]
    }
}

pub async fn fresh_db(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/bridle.db", dir.path().display());
            (url, Some(dir))
        }
        Backend::Postgres => {
            static N: AtomicU32 = AtomicU32::new(0);
            let base = bridle_test_postgres::url().unwrap_or_else(|e| panic!("{e}"));
            let name = format!(
                "bridle_api_{}_{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            sql(base, Backend::Postgres, &format!("CREATE DATABASE {name}")).await;
            let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
            (url, None)
        }
    }
}

/// Run one SQL statement directly against a database (for tamper tests).
pub async fn sql(url: &str, backend: Backend, statement: &str) {
    use sqlx::Executor;
    let statement = sqlx::AssertSqlSafe(statement.to_owned());
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            pool.execute(statement).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            pool.execute(statement).await.unwrap();
            pool.close().await;
        }
    }
}

/// Read one TEXT column of one row directly from a database.
pub async fn sql_text(url: &str, backend: Backend, query: &str) -> String {
    let query = sqlx::AssertSqlSafe(query.to_owned());
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let (v,): (String,) = sqlx::query_as(query).fetch_one(&pool).await.unwrap();
            pool.close().await;
            v
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let (v,): (String,) = sqlx::query_as(query).fetch_one(&pool).await.unwrap();
            pool.close().await;
            v
        }
    }
}

impl Server {
    /// Start the real server on `127.0.0.1:0` with a fresh database.
    pub async fn start(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let (db_url, dir) = fresh_db(backend).await;
        Self::start_on(backend, db_url, dir, tweak).await
    }

    /// Start the real server on `127.0.0.1:0` on an existing database.
    pub async fn start_on(
        backend: Backend,
        db_url: String,
        dir: Option<tempfile::TempDir>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        Self::start_with(backend, db_url, dir, None, tweak).await
    }

    /// Start the real server over https, with a certificate for
    /// `localhost` and `127.0.0.1` signed by a CA made for this test; `http`
    /// trusts that CA.
    pub async fn start_https(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let (db_url, dir) = fresh_db(backend).await;
        Self::start_with(backend, db_url, dir, Some(TestCert::new()), tweak).await
    }

    async fn start_with(
        backend: Backend,
        db_url: String,
        dir: Option<tempfile::TempDir>,
        tls: Option<TestCert>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{addr}");
        let mut config = Config {
            listen: addr,
            db: db_url.clone(),
            issuer: Some(base.clone()),
            admin_token: Some(Secret::new(ADMIN_KEY)),
            key_encryption_key: Some(Secret::new(KEK)),
            ..Config::default()
        };
        if let Some(cert) = &tls {
            config.tls.cert_file = Some(cert.cert_file.clone());
            config.tls.key_file = Some(cert.key_file.clone());
        }
        // The suite's tests load prod reference agents as the one admin to
        // exercise enforcement; change control, which would hold each of
        // them for a second person, is tested on its own
        // (`api/change_control.rs`), where the tweak turns it back on.
        config.change_control.environments.clear();
        // The posture sweep appends `finding` events in the background, at
        // start and after each change; tests that read the audit log would
        // see them interleaved. It is tested on its own (`api/posture.rs`).
        config.posture.enabled = false;
        tweak(&mut config);
        let started = bridle_server::start(config).await.unwrap();
        let state = started.state.clone();
        tokio::spawn(bridle_server::serve_on(listener, started.state));
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(cert) = &tls {
            http = http.tls_certs_only([cert.ca()]);
        }
        let server = Self {
            state,
            base,
            http: http.build().unwrap(),
            backend,
            db_url,
            tls,
            _dir: dir,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = self.http.get(self.url("/healthz")).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "the server did not become ready");
            tokio::task::yield_now().await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with `Authorization: Bearer key` (none when `key` is empty).
    pub fn req(&self, method: reqwest::Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, self.url(path));
        if key.is_empty() {
            r
        } else {
            r.bearer_auth(key)
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            content_type,
            text,
            json,
        }
    }

    pub async fn get(&self, path: &str, key: &str) -> Resp {
        self.send(self.req(reqwest::Method::GET, path, key)).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Resp {
        self.send(self.req(reqwest::Method::POST, path, key).json(&body))
            .await
    }

    /// `PUT /v1/agents/{id}` with a YAML body.
    pub async fn put_yaml(&self, id: &str, key: &str, yaml: &str) -> Resp {
        self.send(
            self.req(reqwest::Method::PUT, &format!("/v1/agents/{id}"), key)
                .header("content-type", "application/yaml")
                .body(yaml.to_owned()),
        )
        .await
    }

    /// Apply a manifest (YAML) as `key`, under the id its `agent:` line names.
    pub async fn apply(&self, key: &str, yaml: &str) -> Resp {
        self.put_yaml(&agent_id(yaml), key, yaml).await
    }

    /// Create a principal as admin; returns its API key.
    pub async fn principal(&self, id: &str, roles: &[&str], groups: &[&str]) -> String {
        let r = self
            .post(
                "/v1/principals",
                ADMIN_KEY,
                json!({"id": id, "roles": roles, "groups": groups}),
            )
            .await
            .expect(201);
        assert_eq!(r["id"], id);
        r["api_key"].as_str().unwrap().to_owned()
    }

    /// The reference cast: owners, approvers, an auditor, a PEP, an outsider.
    pub async fn people(&self) -> People {
        let mut keys = HashMap::new();
        let cast: &[(&str, &[&str], &[&str])] = &[
            ("alice", &[], &[]),
            ("bob", &[], &[]),
            ("carol", &[], &[]),
            ("dave", &[], &["secops"]),
            ("erin", &[], &[]),
            ("frank", &[], &["finance-approvers"]),
            ("gina", &[], &["finance-approvers"]),
            ("sam", &[], &["secops"]),
            ("ann", &["auditor"], &[]),
            ("gateway", &["pep"], &[]),
            ("mallory", &[], &[]),
        ];
        for (id, roles, groups) in cast {
            keys.insert(id.to_string(), self.principal(id, roles, groups).await);
        }
        keys.insert("admin".to_owned(), ADMIN_KEY.to_owned());
        People(keys)
    }

    /// Apply one of `examples/` as admin (must be new).
    pub async fn load(&self, name: &str) {
        self.apply(ADMIN_KEY, example(name)).await.expect(201);
    }

    /// New client credentials for `agent`, created by admin.
    pub async fn credentials(&self, agent: &str) -> (String, String) {
        let r = self
            .post(
                &format!("/v1/agents/{agent}/credentials"),
                ADMIN_KEY,
                json!({}),
            )
            .await
            .expect(201);
        (
            r["client_id"].as_str().unwrap().to_owned(),
            r["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// `POST /oauth/token` with `client_secret_basic` and extra form fields.
    pub async fn token_request(&self, id: &str, secret: &str, form: &[(&str, &str)]) -> Resp {
        let mut fields = vec![("grant_type", "client_credentials")];
        fields.extend_from_slice(form);
        self.send(
            self.http
                .post(self.url("/oauth/token"))
                .basic_auth(id, Some(secret))
                .form(&fields),
        )
        .await
    }

    /// An access token for `agent` from fresh credentials.
    pub async fn agent_token(&self, agent: &str) -> String {
        let (id, secret) = self.credentials(agent).await;
        let r = self.token_request(&id, &secret, &[]).await.expect(200);
        r["access_token"].as_str().unwrap().to_owned()
    }

    /// `POST /v1/decisions` as the agent; asserts 200.
    pub async fn decide(&self, token: &str, action: &str, args: Value) -> Value {
        self.decide_on(token, action, args, None).await
    }

    pub async fn decide_on(
        &self,
        token: &str,
        action: &str,
        args: Value,
        resource: Option<&str>,
    ) -> Value {
        let mut body = json!({"action": action, "args": args});
        if let Some(r) = resource {
            body["resource"] = r.into();
        }
        self.post("/v1/decisions", token, body)
            .await
            .expect(200)
            .json
    }

    /// `POST /v1/approvals/{id}/approve` as `key`.
    pub async fn approve(&self, approval: &str, key: &str) -> Resp {
        self.post(
            &format!("/v1/approvals/{approval}/approve"),
            key,
            json!({"comment": "looks right"}),
        )
        .await
    }

    /// `POST /v1/approvals/{id}/deny` as `key`.
    pub async fn deny(&self, approval: &str, key: &str) -> Resp {
        self.post(
            &format!("/v1/approvals/{approval}/deny"),
            key,
            json!({"comment": "no"}),
        )
        .await
    }

    /// Audit events as `key` with a query string (`""` for all).
    pub async fn audit(&self, key: &str, query: &str) -> Vec<Value> {
        let r = self
            .get(&format!("/v1/audit?limit=1000&{query}"), key)
            .await
            .expect(200);
        r["events"].as_array().unwrap().clone()
    }
}

/// Poll `check` every 200 ms until it returns true; fail after `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `n` identical requests to `POST path` at once; their answers in any order.
pub async fn concurrently(s: &Server, n: usize, path: &str, key: &str, body: Value) -> Vec<Resp> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let req = s.req(reqwest::Method::POST, path, key).json(&body);
        set.spawn(async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            Resp {
                status,
                content_type: String::new(),
                json: serde_json::from_str(&text).unwrap_or(Value::Null),
                text,
            }
        });
    }
    set.join_all().await
}

/// API keys of the reference cast, by principal id (`admin` included).
pub struct People(HashMap<String, String>);

impl People {
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.values()
    }
}

impl std::ops::Index<&str> for People {
    type Output = str;
    fn index(&self, id: &str) -> &str {
        &self.0[id]
    }
}

/// The `agent:` of a YAML manifest.
pub fn agent_id(yaml: &str) -> String {
    yaml.lines()
        .find_map(|l| l.strip_prefix("agent: "))
        .expect("a manifest with an `agent:` line")
        .trim()
        .to_owned()
}

/// One of the reference manifests in `examples/`.
pub fn example(name: &str) -> &'static str {
    match name {
        "procurement-bot" => include_str!("../../../../examples/procurement-bot.yaml"),
        "swe-bot" => include_str!("../../../../examples/swe-bot.yaml"),
        "test-runner" => include_str!("../../../../examples/test-runner.yaml"),
        "support-bot" => include_str!("../../../../examples/support-bot.yaml"),
        "ir-bot" => include_str!("../../../../examples/ir-bot.yaml"),
        "research-bot" => include_str!("../../../../examples/research-bot.yaml"),
        other => panic!("no example `{other}`"),
    }
}

/// A small test manifest owned by `owner`, with `body` after the head.
pub fn manifest(id: &str, owner: &str, body: &str) -> String {
    format!(
        "agent: {id}\nowner: {owner}\npurpose: Exercise the API\nenvironment: dev\nexpires: 2099-12-31\n{body}"
    )
}

/// The `decision` of an answer.
pub fn effect(d: &Value) -> &str {
    d["decision"].as_str().unwrap_or_default()
}

/// The reason codes of a decision (or audit event).
pub fn codes(d: &Value) -> Vec<String> {
    d["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["code"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Assert a decision's effect and that `code` is among its reasons.
#[track_caller]
pub fn assert_decision(d: &Value, decision: &str, code: &str) {
    assert_eq!(effect(d), decision, "{d}");
    assert!(codes(d).iter().any(|c| c == code), "no `{code}` in {d}");
    assert!(
        d["decision_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("dec_")),
        "{d}"
    );
}

/// Decode a JWT's header and payload without verifying it.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut next = || {
        let bytes = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    let header = next();
    let payload = next();
    (header, payload)
}

pub fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

pub mod keys;

/// A CA made for one test and a server certificate it signed, for
/// `localhost` and `127.0.0.1`, in PEM files of a temporary directory.
#[derive(Debug)]
pub struct TestCert {
    pub ca_pem: String,
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
    pub dir: tempfile::TempDir,
}

impl TestCert {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Bridle test CA");
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert_file = dir.path().join("server.pem");
        let key_file = dir.path().join("server.key");
        std::fs::write(&cert_file, leaf.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        Self {
            ca_pem,
            cert_file,
            key_file,
            dir,
        }
    }

    /// The CA as a root for reqwest.
    pub fn ca(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap()
    }
}

/// The burst tests count limits, not timeouts: 40 decisions at once on two
/// replicas of a loaded two-core machine can wait past the default 500 ms
/// for a connection, which answers 503 (fail closed, as it should; the
/// fault suite tests that). Here the waits may be long.
pub fn patient(c: &mut bridle_server::Config) {
    c.database.acquire_timeout_ms = 15_000;
    c.database.lock_timeout_ms = 15_000;
    c.database.statement_timeout_ms = 15_000;
}
