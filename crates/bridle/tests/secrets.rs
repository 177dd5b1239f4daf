//! R7: secrets never in logs, audit or the database in clear. The real
//! `bridle serve` runs with debug logs captured through a full flow, then
//! every secret it issued or was shown is looked for in every encoding a log
//! line could use. Also: the key-encryption key (KEK) at start, as an
//! operator meets it (a generated key file, a wrong key, a missing one).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

const ADMIN: &str = "bk_r7-admin-5f0c2a9e7d3b41c8a6e2";

/// A `bridle serve` child with its output in files; killed when dropped.
struct Serve {
    child: Child,
    stderr: PathBuf,
    stdout: PathBuf,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(dir: &Path, db: &str, env: &[(&str, &str)], tag: &str) -> (Command, PathBuf, PathBuf) {
    let stdout = dir.join(format!("{tag}.stdout"));
    let stderr = dir.join(format!("{tag}.stderr"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bridle"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--db", db])
        .env_remove("BRIDLE_DB")
        .env_remove("BRIDLE_LISTEN")
        .env_remove("BRIDLE_KEY_ENCRYPTION_KEY")
        .env_remove("BRIDLE_KEY_ENCRYPTION_KEY_FILE")
        .env("BRIDLE_ADMIN_TOKEN", ADMIN)
        .env("BRIDLE_LOG", "debug")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap());
    (cmd, stdout, stderr)
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Start `bridle serve` and wait until it logs its listening address.
fn serve(dir: &Path, db: &str, env: &[(&str, &str)], tag: &str) -> Serve {
    let (mut cmd, stdout, stderr) = command(dir, db, env, tag);
    let child = cmd.spawn().unwrap();
    let mut serve = Serve {
        child,
        stderr,
        stdout,
        base: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = read(&serve.stderr);
        if let Some(line) = log.lines().find(|l| l.contains("bridle listening"))
            && let Some((_, after)) = line.split_once("127.0.0.1:")
        {
            let port: String = after.chars().take_while(char::is_ascii_digit).collect();
            serve.base = format!("http://127.0.0.1:{port}");
            return serve;
        }
        if let Some(status) = serve.child.try_wait().unwrap() {
            panic!("bridle serve exited ({status}): {log}");
        }
        assert!(
            Instant::now() < deadline,
            "bridle serve did not start: {log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run `bridle serve` expecting it to refuse to start: (exit code, stderr).
fn refused(dir: &Path, db: &str, env: &[(&str, &str)], tag: &str) -> (i32, String) {
    let (mut cmd, _, stderr) = command(dir, db, env, tag);
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bridle serve started: {}", read(&stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code().unwrap_or(-1), read(&stderr))
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, req: reqwest::RequestBuilder, want: u16) -> Value {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(status, want, "{text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, path: &str, key: &str, body: Value, want: u16) -> Value {
        self.call(
            self.http.post(self.url(path)).bearer_auth(key).json(&body),
            want,
        )
        .await
    }

    async fn get(&self, path: &str, key: &str, want: u16) -> Value {
        self.call(self.http.get(self.url(path)).bearer_auth(key), want)
            .await
    }

    async fn token(&self, id: &str, secret: &str, want: u16) -> Value {
        self.call(
            self.http
                .post(self.url("/oauth/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")]),
            want,
        )
        .await
    }

    async fn decide(&self, token: &str, amount: u64) -> Value {
        self.post(
            "/v1/decisions",
            token,
            json!({"action": "procurement.create_purchase_request",
                   "args": {"vendor": "acme", "amount": amount}}),
            200,
        )
        .await
    }
}

/// The forms a secret could take in a log line or a stored record.
fn encodings(secret: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![secret.to_vec()];
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        out.push(engine.encode(secret).into_bytes());
    }
    out.push(
        secret
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes(),
    );
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn random_kek() -> String {
    use rand::RngCore as _;
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    STANDARD.encode(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_the_audit_log_or_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("bridle.db");
    let db = format!("sqlite://{}", db_path.display());
    let kek = random_kek();
    let server = serve(
        dir.path(),
        &db,
        &[("BRIDLE_KEY_ENCRYPTION_KEY", kek.as_str())],
        "r7",
    );
    bridle_server::install_tls_provider();
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    };
    // (what, secret): everything issued or presented in this run.
    let mut secrets: Vec<(String, String)> = vec![("admin key".into(), ADMIN.into())];

    let mut keys = std::collections::HashMap::new();
    for (id, roles, groups) in [
        ("alice", json!([]), json!([])),
        ("frank", json!([]), json!(["finance-approvers"])),
        ("gateway", json!(["pep"]), json!([])),
        ("sec-lead", json!(["admin"]), json!([])),
    ] {
        let r = api
            .post(
                "/v1/principals",
                ADMIN,
                json!({"id": id, "roles": roles, "groups": groups}),
                201,
            )
            .await;
        let key = r["api_key"].as_str().unwrap().to_owned();
        secrets.push((format!("API key of {id}"), key.clone()));
        keys.insert(id, key);
    }
    // A prod agent: proposed by its owner, approved by an admin (change
    // control), so the change approval's diff is searched for secrets too.
    let manifest = include_str!("../../../examples/procurement-bot.yaml");
    let r = api
        .call(
            api.http
                .put(api.url("/v1/agents/procurement-bot"))
                .bearer_auth(&keys["alice"])
                .header("content-type", "application/yaml")
                .body(manifest),
            202,
        )
        .await;
    let change = r["approval_id"].as_str().unwrap().to_owned();
    api.post(
        &format!("/v1/approvals/{change}/approve"),
        &keys["sec-lead"],
        json!({}),
        200,
    )
    .await;

    // Client credentials, rotated once; both secrets are secrets.
    let r = api
        .post(
            "/v1/agents/procurement-bot/credentials",
            ADMIN,
            json!({}),
            201,
        )
        .await;
    let client_id = r["client_id"].as_str().unwrap().to_owned();
    let first_secret = r["client_secret"].as_str().unwrap().to_owned();
    let r = api
        .post(
            &format!("/v1/agents/procurement-bot/credentials/{client_id}/rotate"),
            ADMIN,
            json!({}),
            200,
        )
        .await;
    let secret = r["client_secret"].as_str().unwrap().to_owned();
    secrets.push(("first client secret".into(), first_secret.clone()));
    secrets.push(("client secret".into(), secret.clone()));
    // Basic auth carries `id:secret` in base64.
    for s in [&first_secret, &secret] {
        secrets.push((
            "client credentials in basic auth".into(),
            STANDARD.encode(format!("{client_id}:{s}")),
        ));
    }

    // Tokens: basic and post client authentication.
    let t1 = api.token(&client_id, &secret, 200).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let t2 = api
        .call(
            api.http.post(api.url("/oauth/token")).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("client_secret", secret.as_str()),
            ]),
            200,
        )
        .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Wrong secrets and keys presented by an attacker are secrets too.
    let wrong_secret = "wrong-client-secret-8c1f0e7b2d";
    api.token(&client_id, wrong_secret, 401).await;
    let wrong_key = "bk_wrong-api-key-4d9a6c3e1b";
    api.get("/v1/agents", wrong_key, 401).await;
    secrets.push(("a wrong client secret".into(), wrong_secret.into()));
    secrets.push(("a wrong API key".into(), wrong_key.into()));
    for t in [&t1, &t2] {
        secrets.push(("access token".into(), t.clone()));
        let signature = t.rsplit('.').next().unwrap().to_owned();
        secrets.push(("access token signature".into(), signature));
    }

    // Decisions: allow, deny, and an approval granted then consumed.
    assert_eq!(api.decide(&t1, 100).await["decision"], "allow");
    assert_eq!(api.decide(&t1, 200_000).await["decision"], "deny");
    let held = api.decide(&t2, 9_000).await;
    assert_eq!(held["decision"], "approval_required", "{held}");
    let approval = held["approval_id"].as_str().unwrap();
    api.post(
        &format!("/v1/approvals/{approval}/approve"),
        &keys["frank"],
        json!({"comment": "ok"}),
        200,
    )
    .await;
    assert_eq!(api.decide(&t2, 9_000).await["decision"], "allow");
    // Introspection by the enforcement point, then revocation.
    let r = api
        .call(
            api.http
                .post(api.url("/oauth/introspect"))
                .bearer_auth(&keys["gateway"])
                .form(&[("token", t1.as_str())]),
            200,
        )
        .await;
    assert_eq!(r["active"], true, "{r}");
    api.call(
        api.http
            .post(api.url("/oauth/revoke"))
            .basic_auth(&client_id, Some(&secret))
            .form(&[("token", t2.as_str())]),
        200,
    )
    .await;
    api.post("/v1/keys/rotate", ADMIN, json!({}), 200).await;

    let audit = api.get("/v1/audit?limit=1000", ADMIN, 200).await;
    let events = audit["events"].as_array().unwrap();
    assert!(events.len() >= 10, "{audit}");
    let audit = serde_json::to_vec(&audit).unwrap();
    let base = server.base.clone();
    let (stdout, stderr) = (server.stdout.clone(), server.stderr.clone());
    drop(server);

    let mut logs = std::fs::read(&stderr).unwrap();
    logs.extend(std::fs::read(&stdout).unwrap());
    assert!(
        contains(&logs, b"DEBUG"),
        "the run was not logged at debug level"
    );
    let mut database = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(b) = std::fs::read(format!("{}{suffix}", db_path.display())) {
            database.extend(b);
        }
    }
    assert!(!database.is_empty());

    let mut leaks = Vec::new();
    let kek_bytes = STANDARD.decode(&kek).unwrap();
    let mut needles: Vec<(String, Vec<u8>)> = encodings(&kek_bytes)
        .into_iter()
        .map(|n| ("the key-encryption key".to_owned(), n))
        .collect();
    for (what, s) in &secrets {
        needles.push((what.clone(), s.as_bytes().to_vec()));
    }
    for (what, needle) in &needles {
        for (place, haystack) in [
            ("the server log", &logs),
            ("the audit log", &audit),
            ("the database", &database),
        ] {
            if contains(haystack, needle) {
                leaks.push(format!("{what} in {place}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets leaked (server {base}): {leaks:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_database_gets_a_key_file_and_refuses_a_wrong_or_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("bridle.db");
    let db = format!("sqlite://{}", db_path.display());
    let key_file = dir.path().join("bridle.db.kek");

    // First start, no KEK configured: one is generated beside the database.
    let first = serve(dir.path(), &db, &[], "first");
    let log = read(&first.stderr);
    drop(first);
    assert!(
        log.contains("generated a key-encryption key") && log.contains("bridle.db.kek"),
        "{log}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let kek = std::fs::read_to_string(&key_file).unwrap();
    let kids = signing_keys(&db).await;
    assert_eq!(kids.len(), 1);

    // Second start: the same file, the same signing key.
    let second = serve(dir.path(), &db, &[], "second");
    drop(second);
    assert_eq!(signing_keys(&db).await, kids);

    // A wrong KEK: a clear error, exit 1, nothing new written.
    let wrong = STANDARD.encode([9u8; 32]);
    let (code, err) = refused(
        dir.path(),
        &db,
        &[("BRIDLE_KEY_ENCRYPTION_KEY", wrong.as_str())],
        "wrong",
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is not the one this database is sealed with")
            && err.contains("BRIDLE_KEY_ENCRYPTION_KEY"),
        "{err}"
    );
    assert!(!err.contains(&wrong) && !err.contains(kek.trim()), "{err}");
    assert_eq!(signing_keys(&db).await, kids);

    // The key file lost: refused, and no new one made in its place.
    std::fs::rename(&key_file, dir.path().join("kept-elsewhere")).unwrap();
    let (code, err) = refused(dir.path(), &db, &[], "missing");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("key_encryption_key_file") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!key_file.exists(), "a new key-encryption key was made");
    assert_eq!(signing_keys(&db).await, kids);

    // Pointed at the kept copy, it starts with the same key.
    let kept = dir.path().join("kept-elsewhere");
    let kept = kept.to_str().unwrap();
    let back = serve(
        dir.path(),
        &db,
        &[("BRIDLE_KEY_ENCRYPTION_KEY_FILE", kept)],
        "back",
    );
    drop(back);
    assert_eq!(signing_keys(&db).await, kids);
}

/// Every signing key row as `kid private_der`, read directly.
async fn signing_keys(db: &str) -> Vec<String> {
    let pool = sqlx::SqlitePool::connect(db).await.unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT kid, private_der FROM signing_keys ORDER BY kid")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows.into_iter().map(|(k, d)| format!("{k} {d}")).collect()
}
