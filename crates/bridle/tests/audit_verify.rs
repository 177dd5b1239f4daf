//! `bridle audit verify --db sqlite://PATH`: offline, it names the first
//! record someone altered in the database file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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
        body.decision = Some("allow".into());
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
