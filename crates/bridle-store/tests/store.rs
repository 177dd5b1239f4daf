//! The storage suite, run against SQLite (a temp file) and PostgreSQL (a
//! fresh database per test on the cluster `scripts/test.sh` starts).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

use std::sync::atomic::{AtomicU32, Ordering};

use bridle_core::Manifest;
use bridle_core::audit::{EventBody, EventType};
use bridle_core::engine::AgentState;
use bridle_core::id::{AgentId, ClientId, Jti};
use bridle_store::{
    AuditFilter, AuditLog, AuditRead, AuthorizationCodeRow, AuthorizationRequestRow,
    AuthorizationStore, ClientAuth, CredentialStore, NewPrincipal, NewToken, PrincipalStore,
    Purged, Redeemed, RegistryRead, RegistryWrite, Role, Store, StoreError,
};
use jiff::Timestamp;

/// Keeps the SQLite temp dir alive for the test's duration.
struct Db {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bridle.db", dir.path().display());
    Db {
        store: Store::connect(&url).await.unwrap(),
        url,
        _dir: Some(dir),
    }
}

async fn postgres() -> Db {
    static N: AtomicU32 = AtomicU32::new(0);
    let base = bridle_test_postgres::url().unwrap_or_else(|e| panic!("{e}"));
    let name = format!(
        "bridle_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let admin = Store::connect_admin_for_tests(base).await;
    admin(&format!("CREATE DATABASE {name}")).await;
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
    Db {
        store: Store::connect(&url).await.unwrap(),
        url,
        _dir: None,
    }
}

trait AdminExt {
    async fn connect_admin_for_tests(url: &str) -> impl AsyncFn(&str);
}

impl AdminExt for Store {
    async fn connect_admin_for_tests(url: &str) -> impl AsyncFn(&str) {
        let url = url.to_owned();
        async move |sql: &str| {
            use sqlx::Executor;
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            pool.execute(sqlx::AssertSqlSafe(sql.to_owned()))
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(crate::sqlite().await).await;
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(crate::postgres().await).await;
            }
        }
    };
}

fn manifest(id: &str, purpose: &str) -> Manifest {
    Manifest::from_source(&format!(
        "agent: {id}\nowner: alice\npurpose: {purpose}\nenvironment: prod\nexpires: 2027-12-31\ntools:\n  - name: web.search\n"
    ))
    .unwrap()
}

fn principal(id: &str, roles: Vec<Role>) -> NewPrincipal {
    NewPrincipal {
        id: id.parse().unwrap(),
        name: id.to_uppercase(),
        roles,
        groups: vec!["finance".parse().unwrap()],
    }
}

async fn principals_and_keys(db: Db) {
    let s = &db.store;
    let p = s
        .create_principal(&principal("alice", vec![Role::Auditor]), "hash-a")
        .await
        .unwrap();
    assert!(p.active);
    assert!(matches!(
        s.create_principal(&principal("alice", vec![]), "hash-b")
            .await,
        Err(StoreError::Conflict(_))
    ));
    let found = s.principal_by_key("hash-a").await.unwrap().unwrap();
    assert_eq!(found.id.as_str(), "alice");
    assert_eq!(found.roles, vec![Role::Auditor]);
    assert_eq!(found.groups[0].as_str(), "finance");
    assert!(s.principal_by_key("hash-b").await.unwrap().is_none());

    s.deactivate_principal(&"alice".parse().unwrap())
        .await
        .unwrap();
    assert!(
        s.principal_by_key("hash-a").await.unwrap().is_none(),
        "a deactivated key still works"
    );
    assert!(
        !s.principal(&"alice".parse().unwrap())
            .await
            .unwrap()
            .unwrap()
            .active
    );
    assert!(matches!(
        s.deactivate_principal(&"nobody".parse().unwrap()).await,
        Err(StoreError::NotFound(_))
    ));

    // The bootstrap admin's key is replaced, not added to.
    let admin = "admin".parse().unwrap();
    s.ensure_admin(&admin, "k1").await.unwrap();
    s.ensure_admin(&admin, "k2").await.unwrap();
    assert!(s.principal_by_key("k1").await.unwrap().is_none());
    assert!(
        s.principal_by_key("k2")
            .await
            .unwrap()
            .unwrap()
            .has_role(Role::Admin)
    );
}
on_both!(principals_and_keys);

async fn registry_versions_and_lifecycle(db: Db) {
    let s = &db.store;
    let id = "research-bot".parse().unwrap();
    let (row, created) = s
        .apply_manifest(
            &manifest("research-bot", "v1"),
            "src1",
            &"alice".parse().unwrap(),
            &serde_json::json!([]),
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!((row.version, row.state), (1, AgentState::Active));
    assert_eq!(row.manifest["purpose"], "v1");
    let (row, created) = s
        .apply_manifest(
            &manifest("research-bot", "v2"),
            "src2",
            &"bob".parse().unwrap(),
            &serde_json::json!([{"path": "purpose", "effect": "neutral", "detail": "v1 → v2"}]),
        )
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(row.version, 2);
    assert_eq!(row.source, "src2");
    let versions = s.agent_versions(&id).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(versions[0].manifest["purpose"], "v1");
    assert_eq!(versions[1].created_by.as_str(), "bob");
    // Each version keeps its text as submitted and what it changed.
    assert_eq!(versions[0].source, "src1");
    assert_eq!(versions[1].source, "src2");
    assert_eq!(versions[1].changes.as_ref().unwrap()[0]["path"], "purpose");

    let row = s
        .set_state(&id, AgentState::Suspended, "denial spike", &by())
        .await
        .unwrap();
    assert_eq!(row.state, AgentState::Suspended);
    assert_eq!(row.state_reason.as_deref(), Some("denial spike"));
    s.set_state(&id, AgentState::Active, "investigated", &by())
        .await
        .unwrap();
    s.set_state(&id, AgentState::Retired, "purpose ended", &by())
        .await
        .unwrap();
    // Retired is terminal, and the id is never reusable.
    assert!(matches!(
        s.set_state(&id, AgentState::Active, "x", &by()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.apply_manifest(
            &manifest("research-bot", "v3"),
            "src3",
            &"alice".parse().unwrap(),
            &serde_json::json!([])
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.agent(&id).await.unwrap().unwrap().version, 2);
    assert!(matches!(
        s.set_state(&"ghost".parse().unwrap(), AgentState::Suspended, "x", &by())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.agents().await.unwrap().len(), 1);
}
on_both!(registry_versions_and_lifecycle);

fn event(i: usize) -> EventBody {
    let mut b = EventBody::new(
        EventType::Decision,
        jiff::Timestamp::now(),
        format!("agent:bot-{}", i % 3),
    );
    b.agent = Some(format!("bot-{}", i % 3));
    b.action = Some(format!("tool.{i}"));
    b.decision = Some(bridle_core::Effect::Allow);
    b
}

async fn audit_chain_group_commit_and_tamper(db: Db) {
    let log = AuditLog::start(db.store.clone());
    // Concurrent appends all land, each exactly once, in one unbroken chain.
    let handles: Vec<_> = (0..300)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(event(i)).await.unwrap() })
        })
        .collect();
    let mut seqs = Vec::new();
    for h in handles {
        seqs.push(h.await.unwrap().seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=300).collect::<Vec<u64>>());
    let v = db.store.verify_audit().await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.events, 300);

    let filter = AuditFilter {
        agent: Some(id("bot-1")),
        limit: 1000,
        ..AuditFilter::default()
    };
    let events = db.store.audit_events(&filter).await.unwrap();
    assert_eq!(events.len(), 100);
    assert!(
        events
            .iter()
            .all(|e| e.body.agent.as_deref() == Some("bot-1"))
    );
    let page = db
        .store
        .audit_events(&AuditFilter {
            after_seq: Some(295),
            limit: 3,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![296, 297, 298]
    );

    // Alter one record behind Bridle's back: verification names it.
    let target = 137;
    let row = &db
        .store
        .audit_events(&AuditFilter {
            after_seq: Some(target - 1),
            limit: 1,
            ..AuditFilter::default()
        })
        .await
        .unwrap()[0];
    let mut altered = row.body.clone();
    altered.decision = Some(bridle_core::Effect::Deny);
    tamper(&db, target, &serde_json::to_string(&altered).unwrap()).await;
    let v = db.store.verify_audit().await.unwrap();
    assert!(!v.ok);
    assert_eq!(v.first_bad_seq, Some(target));

    // Garbage in a record is also reported, not a crash.
    tamper(&db, 5, "not json").await;
    assert_eq!(
        db.store.verify_audit().await.unwrap().first_bad_seq,
        Some(5)
    );
}
on_both!(audit_chain_group_commit_and_tamper);

async fn tamper(db: &Db, seq: u64, body: &str) {
    let sql = format!(
        "UPDATE audit_events SET body = '{}' WHERE seq = {seq}",
        body.replace('\'', "''")
    );
    execute(db, sql).await;
}

/// Run `sql` behind Bridle's back.
async fn execute(db: &Db, sql: String) {
    if db.url.starts_with("sqlite://") {
        use sqlx::Executor;
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        pool.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
        pool.close().await;
    } else {
        Store::connect_admin_for_tests(&db.url).await(&sql).await;
    }
}

async fn reopening_continues_the_chain(db: Db) {
    let log = AuditLog::start(db.store.clone());
    log.append(event(1)).await.unwrap();
    db.store.close().await;
    let store = Store::connect(&db.url).await.unwrap();
    let log = AuditLog::start(store.clone());
    let e = log.append(event(2)).await.unwrap();
    assert_eq!(e.seq, 2);
    assert!(store.verify_audit().await.unwrap().ok);
    store.check_writable().await.unwrap();
}
on_both!(reopening_continues_the_chain);

/// The write check behind `/healthz` takes the path of an audit append:
/// while an insert into the audit table fails (a trigger raising here, as a
/// full disk or a broken file would), it fails like the append does; once
/// the cause is gone, both succeed again on the same store, and the check
/// leaves the chain as it was.
async fn the_write_check_fails_with_a_failing_audit_insert(db: Db) {
    let log = AuditLog::start(db.store.clone());
    log.append(event(1)).await.unwrap();
    db.store.check_writable().await.unwrap();
    if db.url.starts_with("sqlite://") {
        execute(
            &db,
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_events \
             BEGIN SELECT RAISE(ABORT, 'refused'); END"
                .into(),
        )
        .await;
    } else {
        execute(
            &db,
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
             $$BEGIN RAISE EXCEPTION 'refused'; END$$"
                .into(),
        )
        .await;
        execute(
            &db,
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION refuse()"
                .into(),
        )
        .await;
    }
    assert!(db.store.check_writable().await.is_err());
    assert!(log.append(event(2)).await.is_err());
    let sql = if db.url.starts_with("sqlite://") {
        "DROP TRIGGER refuse"
    } else {
        "DROP TRIGGER refuse ON audit_events"
    };
    execute(&db, sql.into()).await;
    db.store.check_writable().await.unwrap();
    let e = log.append(event(3)).await.unwrap();
    assert_eq!(
        e.seq, 2,
        "neither the check nor the refused append took a place"
    );
    let all = db
        .store
        .audit_events(&AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(db.store.verify_audit().await.unwrap().ok);
}
on_both!(the_write_check_fails_with_a_failing_audit_insert);

#[tokio::test]
async fn a_database_from_a_newer_bridle_is_refused() {
    let db = sqlite().await;
    db.store.close().await;
    {
        use sqlx::Executor;
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        pool.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', 1, x'00', 0)",
        )
        .await
        .unwrap();
        pool.close().await;
    }
    let err = Store::connect(&db.url).await.unwrap_err();
    assert!(matches!(err, StoreError::Migrate(_)), "{err}");
    assert!(err.to_string().contains("newer Bridle"), "{err}");
}

#[tokio::test]
async fn unsupported_urls_are_a_clear_error_without_the_password() {
    let err = Store::connect("mysql://root:secret@db/x")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("expected `sqlite://PATH` or `postgres://"),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
}

/// A typed id (or instant) from its text, for brevity.
fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn token<'a>(
    jti: &'a Jti,
    client: &'a ClientId,
    parent: Option<&'a Jti>,
    exp: Timestamp,
) -> NewToken<'a> {
    static AGENT: std::sync::LazyLock<AgentId> = std::sync::LazyLock::new(|| id("research-bot"));
    NewToken {
        jti,
        agent: &AGENT,
        client_id: client,
        expires_at: exp,
        parent_jti: parent,
    }
}

async fn credentials_tokens_and_one_time_ids(db: Db) {
    let s = &db.store;
    research_bot(s).await;
    let bot: AgentId = id("research-bot");
    let (rb1, rb2, rb7, rb9): (ClientId, ClientId, ClientId, ClientId) =
        (id("rb.1"), id("rb.2"), id("rb.7"), id("rb.9"));
    let secret = ClientAuth::Secret {
        hash: "h1".into(),
        previous: None,
    };
    s.add_credential(&bot, &rb1, &secret).await.unwrap();
    let jwk = ClientAuth::PublicJwk(r#"{"kty":"OKP"}"#.into());
    s.add_credential(&bot, &rb2, &jwk).await.unwrap();
    assert_eq!(s.credential(&rb2).await.unwrap().unwrap().auth, jwk);
    assert_eq!(s.credentials(&bot).await.unwrap().len(), 2);

    // Rotation keeps the previous hash until the overlap ends; a key
    // credential cannot be rotated.
    let far = at("2099-01-01T00:00:00Z");
    assert!(s.rotate_secret(&rb1, "h2", Some(far)).await.unwrap());
    let c = s.credential(&rb1).await.unwrap().unwrap();
    assert_eq!(
        c.auth,
        ClientAuth::Secret {
            hash: "h2".into(),
            previous: Some(("h1".into(), far)),
        }
    );
    assert!(c.rotated_at.is_some());
    assert!(s.rotate_secret(&rb1, "h3", None).await.unwrap());
    let c = s.credential(&rb1).await.unwrap().unwrap();
    assert_eq!(
        c.auth,
        ClientAuth::Secret {
            hash: "h3".into(),
            previous: None
        }
    );
    assert!(!s.rotate_secret(&rb2, "h", None).await.unwrap());

    // A lineage: t1 → t2 → t3, and t4 beside it. Revoking t2 revokes t3 only.
    let [t1, t2, t3, t4, t5, old]: [Jti; 6] = ["t1", "t2", "t3", "t4", "t5", "old"].map(id);
    s.record_token(&token(&t1, &rb1, None, far)).await.unwrap();
    s.record_token(&token(&t2, &rb9, Some(&t1), far))
        .await
        .unwrap();
    s.record_token(&token(&t3, &rb9, Some(&t2), far))
        .await
        .unwrap();
    s.record_token(&token(&t4, &rb2, None, far)).await.unwrap();
    assert_eq!(s.revoke_token(&t2).await.unwrap(), 2);
    assert_eq!(s.revoke_token(&t2).await.unwrap(), 0);
    let revoked = async |jti: &Jti| s.token(jti).await.unwrap().unwrap().revoked;
    assert!(!revoked(&t1).await && revoked(&t2).await && revoked(&t3).await);
    assert_eq!(
        s.token(&t3).await.unwrap().unwrap().parent_jti,
        Some(t2.clone())
    );
    // Revoking a credential revokes the tokens issued to it and theirs.
    s.record_token(&token(&t5, &rb7, Some(&t1), far))
        .await
        .unwrap();
    assert_eq!(
        s.revoke_credential(&rb1).await.unwrap(),
        Some(2),
        "t1 and t5"
    );
    assert_eq!(s.revoke_credential(&rb1).await.unwrap(), None);
    assert!(!revoked(&t4).await);

    // One-time ids are single use, per kind; expired records are purged.
    let j1: Jti = id("j1");
    let long_ago = at("2000-01-01T00:00:00Z");
    assert!(s.use_jti("dpop", &j1, long_ago).await.unwrap());
    assert!(!s.use_jti("dpop", &j1, far).await.unwrap());
    assert!(s.use_jti("client_assertion", &j1, far).await.unwrap());
    // Whether one is recorded: per kind, and only until it expires.
    let then = at("2010-01-01T00:00:00Z");
    assert!(s.jti_used("client_assertion", &j1, then).await.unwrap());
    assert!(!s.jti_used("dpop", &j1, then).await.unwrap(), "expired");
    assert!(!s.jti_used("dpop@gw", &j1, then).await.unwrap());
    s.record_token(&token(&old, &rb2, None, long_ago))
        .await
        .unwrap();
    assert_eq!(
        s.purge_expired(at("2020-01-01T00:00:00Z")).await.unwrap(),
        Purged { tokens: 1, jtis: 1 }
    );
    assert!(s.token(&old).await.unwrap().is_none());
    assert!(
        s.use_jti("dpop", &j1, far).await.unwrap(),
        "purged, so usable again"
    );
}
on_both!(credentials_tokens_and_one_time_ids);

fn by() -> bridle_store::StateBy {
    bridle_store::StateBy {
        actor: "principal:admin".into(),
        admin: true,
    }
}

#[path = "store/findings.rs"]
mod findings;
#[path = "store/upgrades.rs"]
mod upgrades;
#[path = "store/values.rs"]
mod values;
#[path = "store/wal.rs"]
mod wal;

/// Apply the `research-bot` record the credential tests use.
async fn research_bot(s: &Store) {
    s.apply_manifest(
        &manifest("research-bot", "v1"),
        "src",
        &id("alice"),
        &serde_json::json!([]),
    )
    .await
    .unwrap();
}

/// A consent request is decided once; a code is redeemed once, even by
/// concurrent callers, and a later presentation names the token issued.
async fn authorization_requests_and_codes(db: Db) {
    let s = &db.store;
    research_bot(s).await;
    // At the store's precision, so rows compare equal when read back.
    let now = Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap();
    let later = now + jiff::SignedDuration::from_mins(10);
    let client: ClientId = id("https://client.example/oauth.json");
    let request = AuthorizationRequestRow {
        id_hash: "req-hash".into(),
        client_id: client.clone(),
        client_name: "Client".into(),
        redirect_uri: "http://127.0.0.1/cb".into(),
        state: Some("st".into()),
        code_challenge: "challenge".into(),
        resource: None,
        scope: Some("web.search".into()),
        created_at: now,
        expires_at: later,
    };
    s.create_authorization_request(&request).await.unwrap();
    assert!(
        s.authorization_request("req-hash", now)
            .await
            .unwrap()
            .is_some()
    );
    // Expired at `later`: neither read nor taken.
    assert!(
        s.authorization_request("req-hash", later)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.take_authorization_request("req-hash", later)
            .await
            .unwrap()
            .is_none()
    );
    let taken = s.take_authorization_request("req-hash", now).await.unwrap();
    assert_eq!(taken.unwrap().client_id, client);
    assert!(
        s.take_authorization_request("req-hash", now)
            .await
            .unwrap()
            .is_none()
    );

    let code = AuthorizationCodeRow {
        code_hash: "code-hash".into(),
        client_id: client.clone(),
        redirect_uri: "http://127.0.0.1/cb".into(),
        code_challenge: "challenge".into(),
        agent: id("research-bot"),
        principal: id("alice"),
        resource: Some("https://mcp.example/".into()),
        scope: None,
        created_at: now,
        expires_at: now + jiff::SignedDuration::from_secs(60),
    };
    s.create_authorization_code(&code).await.unwrap();
    let attempts = futures_join(s, "code-hash", now).await;
    let fresh = attempts
        .iter()
        .filter(|r| matches!(r, Redeemed::Fresh(_)))
        .count();
    assert_eq!(fresh, 1, "{attempts:?}");
    assert!(attempts.contains(&Redeemed::Fresh(code.clone())));
    let jti: Jti = id("jti-1");
    // A reuse came in before the token was noted: the issuer must revoke.
    assert!(
        s.authorization_code_issued("code-hash", &jti)
            .await
            .unwrap()
    );
    assert_eq!(
        s.redeem_authorization_code("code-hash", now).await.unwrap(),
        Redeemed::Reused {
            agent: id("research-bot"),
            jti: Some(jti),
        }
    );
    assert_eq!(
        s.redeem_authorization_code("nothing", now).await.unwrap(),
        Redeemed::Unknown
    );
    // Purged once expired past the margin the caller gives.
    assert_eq!(s.purge_authorizations(now, now).await.unwrap(), 0);
    let gone = now + jiff::SignedDuration::from_hours(1);
    assert_eq!(s.purge_authorizations(gone, gone).await.unwrap(), 1);
}
on_both!(authorization_requests_and_codes);

/// Four concurrent redemptions of one code.
async fn futures_join(s: &Store, hash: &str, now: Timestamp) -> Vec<Redeemed> {
    let (a, b, c, d) = tokio::join!(
        s.redeem_authorization_code(hash, now),
        s.redeem_authorization_code(hash, now),
        s.redeem_authorization_code(hash, now),
        s.redeem_authorization_code(hash, now),
    );
    [a, b, c, d].into_iter().map(Result::unwrap).collect()
}
