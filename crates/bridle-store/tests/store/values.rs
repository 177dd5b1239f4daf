//! Values as stored: instants keep the text earlier releases wrote, and a
//! stored value that does not validate is corrupt data, never a panic.

use bridle_core::id::{AgentId, ClientId};
use bridle_store::{
    ClientAuth, CredentialStore as _, RegistryRead as _, RegistryWrite as _, StoreError,
};

use crate::{Db, at, execute, id, manifest};

/// One text value read behind Bridle's back.
async fn raw_text(db: &Db, sql: &str) -> String {
    use sqlx::Row;
    if db.url.starts_with("sqlite://") {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        let text: String = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        pool.close().await;
        text
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let text: String = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        pool.close().await;
        text
    }
}

/// The on-disk format of instants is what earlier releases wrote
/// (fixed-width UTC, microseconds), so SQL compares them as text and old
/// databases read back; a typed instant given to the store is the one read.
async fn instants_keep_their_stored_text(db: Db) {
    let s = &db.store;
    let (row, _) = s
        .apply_manifest(
            &manifest("research-bot", "v1"),
            "src",
            &id("alice"),
            &serde_json::json!([]),
        )
        .await
        .unwrap();
    let stored = raw_text(
        &db,
        "SELECT created_at FROM agents WHERE id = 'research-bot'",
    )
    .await;
    let shape = stored.len() == 27
        && stored.ends_with('Z')
        && stored.as_bytes()[10] == b'T'
        && stored.as_bytes()[19] == b'.';
    assert!(shape, "{stored}");
    assert_eq!(row.created_at, at(&stored));
    assert_eq!(
        s.agent(&row.id).await.unwrap().unwrap().created_at,
        row.created_at
    );
    assert_eq!(row.expires.to_string(), "2027-12-31");

    // An instant written by the caller: text at microseconds, read back equal.
    let bot: AgentId = id("research-bot");
    let client: ClientId = id("rb.1");
    let secret = ClientAuth::Secret {
        hash: "h".into(),
        previous: None,
    };
    s.add_credential(&bot, &client, &secret).await.unwrap();
    let until = at("2099-03-04T05:06:07.89Z");
    s.rotate_secret(&client, "h2", Some(until)).await.unwrap();
    assert_eq!(
        raw_text(&db, "SELECT previous_expires_at FROM agent_credentials").await,
        "2099-03-04T05:06:07.890000Z"
    );
    let c = s.credential(&client).await.unwrap().unwrap();
    assert_eq!(
        c.auth,
        ClientAuth::Secret {
            hash: "h2".into(),
            previous: Some(("h".into(), until)),
        }
    );
}
on_both!(instants_keep_their_stored_text);

/// A stored id that does not validate, or an instant that does not parse,
/// is a `Corrupt` error naming the column, never a panic or a "database
/// unavailable".
async fn malformed_stored_values_are_corrupt(db: Db) {
    let s = &db.store;
    let (row, _) = s
        .apply_manifest(
            &manifest("research-bot", "v1"),
            "src",
            &id("alice"),
            &serde_json::json!([]),
        )
        .await
        .unwrap();
    execute(&db, "UPDATE agents SET owner = 'not an id!'".into()).await;
    match s.agent(&row.id).await {
        Err(StoreError::Corrupt(why)) => {
            assert!(
                why.contains("owner") && why.contains("not a valid principal id"),
                "{why}"
            );
        }
        other => panic!("expected corrupt data, got {other:?}"),
    }
    execute(
        &db,
        "UPDATE agents SET owner = 'alice', updated_at = 'yesterday'".into(),
    )
    .await;
    match s.agents().await {
        Err(StoreError::Corrupt(why)) => {
            assert!(
                why.contains("updated_at") && why.contains("yesterday"),
                "{why}"
            );
        }
        other => panic!("expected corrupt data, got {other:?}"),
    }
}
on_both!(malformed_stored_values_are_corrupt);
