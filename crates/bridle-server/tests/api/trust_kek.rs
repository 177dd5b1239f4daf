//! Private keys at rest: sealed with the key-encryption key (KEK), so a copy
//! of the database is no token-forging kit; a wrong or missing KEK stops the
//! start before anything is written; keys of an earlier release (plain
//! PKCS#8) are sealed in place and their tokens keep verifying.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bridle_server::kek::Kek;
use bridle_server::{Config, Secret};
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use serde_json::json;

use crate::common::{self, ADMIN_KEY, Backend, KEK, Server, jwt_parts, manifest, sql, sql_text};

fn kek() -> Kek {
    Kek::parse(KEK, "the test KEK").unwrap()
}

/// Every signing key row as `(kid, stored private_der)`, oldest first.
async fn key_rows(s: &Server) -> Vec<(String, String)> {
    let all = sql_text(
        &s.db_url,
        s.backend,
        "SELECT COALESCE(string_agg(kid || ' ' || private_der, ',' ORDER BY created_at), '') FROM signing_keys",
    )
    .await;
    all.split(',')
        .filter(|r| !r.is_empty())
        .map(|r| {
            let (kid, der) = r.split_once(' ').unwrap();
            (kid.to_owned(), der.to_owned())
        })
        .collect()
}

/// Everything the database holds of its keys, as a backup would: the raw
/// SQLite files (database and WAL), or PostgreSQL's rows as text.
async fn raw_storage(s: &Server) -> Vec<u8> {
    match s.backend {
        Backend::Sqlite => {
            let path = s.db_url.strip_prefix("sqlite://").unwrap();
            let mut bytes = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                if let Ok(b) = std::fs::read(format!("{path}{suffix}")) {
                    bytes.extend(b);
                }
            }
            bytes
        }
        Backend::Postgres => sql_text(
            &s.db_url,
            s.backend,
            "SELECT (SELECT COALESCE(string_agg(k::text, E'\\n'), '') FROM signing_keys k) || (SELECT COALESCE(string_agg(e::text, E'\\n'), '') FROM key_encryption e)",
        )
        .await
        .into_bytes(),
    }
}

/// The ways a 32-byte or DER secret could be written down.
fn encodings(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![bytes.to_vec()];
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        out.push(engine.encode(bytes).into_bytes());
    }
    out.push(
        bytes
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

/// A server configuration on `s`'s database with another KEK setting.
fn config_on(s: &Server, kek: Option<&str>) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        db: s.db_url.clone(),
        issuer: Some(s.base.clone()),
        admin_token: Some(Secret::new(ADMIN_KEY)),
        key_encryption_key: kek.map(Secret::new),
        ..Config::default()
    }
}

/// Rows, principals and the check value, to show a refused start wrote
/// nothing.
async fn snapshot(s: &Server) -> String {
    sql_text(
        &s.db_url,
        s.backend,
        "SELECT (SELECT COALESCE(string_agg(kid || private_der, ','), '') FROM signing_keys) || '|' || (SELECT COUNT(*) FROM principals) || '|' || (SELECT COALESCE(MAX(kek_id), '') FROM key_encryption)",
    )
    .await
}

async fn private_keys_are_sealed_at_rest(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let (id, secret) = s.credentials("swe-bot").await;
    let before = s.token_request(&id, &secret, &[]).await.expect(200);
    let before = before["access_token"].as_str().unwrap().to_owned();
    // Rotation seals the new key too, and both keys keep working.
    s.post("/v1/keys/rotate", ADMIN_KEY, json!({}))
        .await
        .expect(200);
    let after = s.token_request(&id, &secret, &[]).await.expect(200);
    let after = after["access_token"].as_str().unwrap().to_owned();
    assert_ne!(jwt_parts(&before).0["kid"], jwt_parts(&after).0["kid"]);
    s.decide(&before, "ci.run_tests", json!({})).await;
    s.decide(&after, "ci.run_tests", json!({})).await;

    let rows = key_rows(&s).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let raw = raw_storage(&s).await;
    assert!(!raw.is_empty());
    let kek = kek();
    for (kid, stored) in &rows {
        assert!(stored.starts_with("kek1:"), "{kid} is stored unsealed");
        let der = kek.open(kid, stored).unwrap();
        // The 32-byte seed is the whole private key.
        let seed = ed25519_dalek::SigningKey::from_pkcs8_der(&der)
            .unwrap()
            .to_bytes();
        for needle in encodings(&der).into_iter().chain(encodings(&seed)) {
            assert!(
                !contains(&raw, &needle),
                "the private key `{kid}` is readable in the database"
            );
        }
    }
    for needle in encodings(&STANDARD.decode(KEK).unwrap()) {
        assert!(!contains(&raw, &needle), "the KEK is in the database");
    }
    // A sealed key moved to another row does not open.
    assert!(kek.open(&rows[0].0, &rows[1].1).is_err());
}
on_both!(private_keys_are_sealed_at_rest);

async fn a_wrong_or_missing_kek_is_refused_and_writes_nothing(s: Server) {
    s.principal("bob", &[], &[]).await;
    s.load("swe-bot").await;
    let token = s.agent_token("swe-bot").await;
    let before = snapshot(&s).await;

    let other = STANDARD.encode([7u8; 32]);
    let err = bridle_server::start(config_on(&s, Some(&other)))
        .await
        .expect_err("a wrong KEK must not start")
        .to_string();
    assert!(
        err.contains("is not the one this database is sealed with")
            && err.contains("BRIDLE_KEY_ENCRYPTION_KEY")
            && err.contains(kek().id()),
        "{err}"
    );
    let err = bridle_server::start(config_on(&s, Some("not a key")))
        .await
        .expect_err("a malformed KEK must not start")
        .to_string();
    assert!(err.contains("not a key-encryption key"), "{err}");

    // No KEK at all: SQLite looks for the key file beside the database,
    // which this database never had; it must not make one now.
    let err = bridle_server::start(config_on(&s, None))
        .await
        .expect_err("a sealed database without its KEK must not start")
        .to_string();
    assert!(
        err.contains("BRIDLE_KEY_ENCRYPTION_KEY") && err.contains("key_encryption_key_file"),
        "{err}"
    );
    if s.backend == Backend::Sqlite {
        let path = format!("{}.kek", s.db_url.strip_prefix("sqlite://").unwrap());
        assert!(!std::path::Path::new(&path).exists(), "a new KEK was made");
    }
    assert_eq!(
        snapshot(&s).await,
        before,
        "a refused start wrote to the store"
    );
    // The running server is unaffected.
    s.decide(&token, "ci.run_tests", json!({})).await;
}
on_both!(a_wrong_or_missing_kek_is_refused_and_writes_nothing);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_without_a_kek_does_not_start() {
    let (url, _) = common::fresh_db(Backend::Postgres).await;
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        db: url.clone(),
        admin_token: Some(Secret::new(ADMIN_KEY)),
        ..Config::default()
    };
    let err = bridle_server::start(config)
        .await
        .expect_err("PostgreSQL without a KEK must not start")
        .to_string();
    assert!(
        err.contains("PostgreSQL")
            && err.contains("BRIDLE_KEY_ENCRYPTION_KEY")
            && err.contains("key_encryption_key_file"),
        "{err}"
    );
    let written = sql_text(
        &url,
        Backend::Postgres,
        "SELECT ((SELECT COUNT(*) FROM signing_keys) + (SELECT COUNT(*) FROM principals))::text",
    )
    .await;
    assert_eq!(written, "0", "nothing is written without a KEK");
}

async fn plain_keys_of_an_earlier_release_are_sealed_in_place(s: Server) {
    s.principal("alice", &[], &[]).await;
    let m = manifest(
        "mail-bot",
        "alice",
        "tools:\n  - name: mail.send\n    sensitive: [body]\n",
    );
    s.apply(ADMIN_KEY, &m).await.expect(201);
    let token = s.agent_token("mail-bot").await;
    let body = json!({"body": "quarterly numbers"});
    s.decide(&token, "mail.send", body.clone()).await;
    s.post("/v1/keys/rotate", ADMIN_KEY, json!({}))
        .await
        .expect(200);
    let old_token = s.agent_token("mail-bot").await;

    // The database as an earlier release wrote it: base64 PKCS#8 in
    // `private_der`, no check value.
    let kek = kek();
    let sealed = key_rows(&s).await;
    for (kid, stored) in &sealed {
        let plain = STANDARD.encode(&*kek.open(kid, stored).unwrap());
        sql(
            &s.db_url,
            s.backend,
            &format!("UPDATE signing_keys SET private_der = '{plain}' WHERE kid = '{kid}'"),
        )
        .await;
    }
    sql(&s.db_url, s.backend, "DELETE FROM key_encryption").await;
    assert!(
        key_rows(&s)
            .await
            .iter()
            .all(|(_, d)| !d.starts_with("kek1:"))
    );

    // First start with a KEK: the same keys, now sealed.
    let issuer = s.base.clone();
    let upgraded = Server::start_on(s.backend, s.db_url.clone(), None, |c| {
        c.issuer = Some(issuer);
    })
    .await;
    let rows = key_rows(&upgraded).await;
    let kids = |r: &[(String, String)]| r.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(kids(&rows), kids(&sealed), "the signing keys were replaced");
    for (kid, stored) in &rows {
        assert!(stored.starts_with("kek1:"), "{kid} was left unsealed");
        assert_eq!(
            kek.open(kid, stored).unwrap(),
            kek.open(kid, &sealed.iter().find(|(k, _)| k == kid).unwrap().1)
                .unwrap()
        );
    }
    let check = sql_text(
        &upgraded.db_url,
        upgraded.backend,
        "SELECT kek_id FROM key_encryption",
    )
    .await;
    assert_eq!(check, kek.id());

    // Tokens signed before the upgrade verify, and sensitive values hash as
    // they did (the audit HMAC key is unchanged).
    upgraded.decide(&old_token, "mail.send", body.clone()).await;
    upgraded.decide(&token, "mail.send", body).await;
    let events = upgraded
        .audit(ADMIN_KEY, "type=decision&agent=mail-bot")
        .await;
    assert_eq!(events.len(), 3);
    let hashed = events[0]["args"]["body"].as_str().unwrap();
    assert!(hashed.starts_with("hmac-sha256:"), "{hashed}");
    assert!(events.iter().all(|e| e["args"]["body"] == hashed));
}
on_both!(plain_keys_of_an_earlier_release_are_sealed_in_place);
