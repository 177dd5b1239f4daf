//! `bridle audit verify --db sqlite://PATH`: offline, it names the first
//! record someone altered in the database file, and with `--checkpoints
//! FILE` (a witness copy) it catches a log cut short or rewritten with every
//! later hash recomputed, even when the store's own checkpoints are gone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

use std::process::Command;

use bridle_core::audit::{EventBody, EventType};
use bridle_store::{AuditLog, Store};
use sqlx::Executor;

fn verify(url: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bridle"))
        .args(["audit", "verify", "--db", url])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

#[tokio::test]
async fn an_altered_row_in_the_sqlite_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bridle.db", dir.path().display());
    let store = Store::connect(&url).await.unwrap();
    let log = AuditLog::start(store.clone());
    for i in 0..20 {
        let mut body = EventBody::new(
            EventType::Decision,
            jiff::Timestamp::now(),
            "agent:procurement-bot",
        );
        body.action = Some("procurement.create_purchase_request".into());
        body.args = Some(serde_json::json!({"vendor": "acme", "amount": 100 + i}));
        body.decision = Some(bridle_core::Effect::Allow);
        log.append(body).await.unwrap();
    }
    store.close().await;

    let (code, text) = verify(&url);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok: 20 events"), "{text}");

    // Someone edits an amount in place with the sqlite file open.
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    pool.execute("UPDATE audit_events SET body = replace(body, '\"amount\":107', '\"amount\":9107') WHERE seq = 8")
        .await
        .unwrap();
    pool.close().await;

    let (code, text) = verify(&url);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("fails at seq 8"), "{text}");
}

#[test]
fn a_missing_database_is_an_error_not_a_new_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.db");
    let (code, text) = verify(&format!("sqlite://{}", path.display()));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("does not exist"), "{text}");
    assert!(!path.exists());
}

fn verify_with(url: &str, witness: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bridle"))
        .args(["audit", "verify", "--db", url, "--checkpoints"])
        .arg(witness)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

/// A server with a file witness signs a checkpoint per commit; it runs on
/// its own runtime, dropped (server stopped) once the witness holds the
/// checkpoint of the head. Returns the head `seq`.
fn witnessed_log(url: &str, witness: &std::path::Path) -> u64 {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let head = runtime.block_on(async {
        let mut config = bridle_server::Config {
            db: url.to_owned(),
            admin_token: Some(bridle_server::Secret::new("bk_test-admin-key-0123456789")),
            ..bridle_server::Config::default()
        };
        config.audit.checkpoint_every = 1;
        config.audit.witnesses = vec![witness.display().to_string()];
        let started = bridle_server::start(config).await.unwrap();
        let state = started.state;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        tokio::spawn(bridle_server::serve_on(listener, state.clone()));
        let mut head = 0;
        for i in 0..12 {
            let mut body = EventBody::new(
                EventType::Decision,
                jiff::Timestamp::now(),
                "agent:procurement-bot",
            );
            body.action = Some("procurement.create_purchase_request".into());
            body.args = Some(serde_json::json!({"vendor": "acme", "amount": 100 + i}));
            body.decision = Some(bridle_core::Effect::Deny);
            head = state.audit(body).await.unwrap().seq;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(witness).unwrap_or_default();
            if text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|l| l["seq"] == head)
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no witness line for {head}: {text}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        head
    });
    drop(runtime);
    head
}

fn run_sql(url: &str, statements: &[String]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        for s in statements {
            pool.execute(sqlx::AssertSqlSafe(s.clone())).await.unwrap();
        }
        pool.close().await;
    });
}

fn column(url: &str, col: &str, seq: u64) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let (v,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {col} FROM audit_events WHERE seq = {seq}"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        v
    })
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[test]
fn a_witness_file_catches_a_log_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bridle.db", dir.path().display());
    let witness = dir.path().join("witness.jsonl");
    let head = witnessed_log(&url, &witness);
    let (code, text) = verify_with(&url, &witness);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&format!("checkpoint {head}")), "{text}");

    // Someone removes the last records, points the head at what is left and
    // removes the store's own checkpoints.
    let keep = head - 3;
    let kept = column(&url, "hash", keep);
    run_sql(
        &url,
        &[
            format!("DELETE FROM audit_events WHERE seq > {keep}"),
            format!(
                "UPDATE audit_head SET seq = {keep}, hash = {} WHERE id = 1",
                quoted(&kept)
            ),
            "DELETE FROM audit_checkpoints".to_owned(),
        ],
    );
    let (code, text) = verify(&url);
    assert_eq!(code, 0, "the store alone cannot tell: {text}");
    let (code, text) = verify_with(&url, &witness);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains(&format!("fails at seq {}", keep + 1)),
        "{text}"
    );
    assert!(
        text.contains(&format!("seq {}: the log ends here", keep + 1)),
        "{text}"
    );
}

#[test]
fn a_witness_file_catches_a_recomputed_chain() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bridle.db", dir.path().display());
    let witness = dir.path().join("witness.jsonl");
    let head = witnessed_log(&url, &witness);

    // Someone rewrites a denial as an allow and recomputes every later hash
    // and the head, and removes the store's own checkpoints.
    let target = head - 4;
    let body = column(&url, "body", target).replace("\"deny\"", "\"allow\"");
    let mut prev = column(&url, "prev_hash", target);
    let mut statements = vec![format!(
        "UPDATE audit_events SET body = {} WHERE seq = {target}",
        quoted(&body)
    )];
    for seq in target..=head {
        let text = if seq == target {
            body.clone()
        } else {
            column(&url, "body", seq)
        };
        let hash = bridle_core::audit::hash_exact(seq, &text, &prev);
        statements.push(format!(
            "UPDATE audit_events SET prev_hash = {}, hash = {} WHERE seq = {seq}",
            quoted(&prev),
            quoted(&hash)
        ));
        prev = hash;
    }
    statements.push(format!(
        "UPDATE audit_head SET hash = {} WHERE id = 1",
        quoted(&prev)
    ));
    statements.push("DELETE FROM audit_checkpoints".to_owned());
    run_sql(&url, &statements);

    let (code, text) = verify(&url);
    assert_eq!(code, 0, "the store alone cannot tell: {text}");
    let (code, text) = verify_with(&url, &witness);
    assert_eq!(code, 2, "{text}");
    // Every witnessed checkpoint from the rewritten record on disagrees (the
    // head's at least); the chain itself is consistent.
    assert!(
        text.contains(&format!("seq {head}: differs from the signed checkpoint")),
        "{text}"
    );
}
