//! Upgrades: what an earlier release left in the database is carried into
//! what this one keeps, and counted the same.

use bridle_core::Effect;
use bridle_core::audit::{EventBody, EventType};
use bridle_core::decision::{Reason, ReasonCode};
use bridle_core::id::AgentId;
use bridle_store::{AuditLog, Store};
use jiff::Timestamp;

use crate::{Db, execute, id};

/// Usage recorded one row per charge (before counters) is carried into the
/// counters by the upgrade and counted the same: by window, negative
/// amounts never.
async fn usage_rows_become_counters_on_upgrade(db: Db) {
    use bridle_core::ledger::{LedgerRead, LimitHit, Spend};
    use bridle_core::manifest::Rate;
    use bridle_store::{LimitNeed, UsageStore};
    use jiff::SignedDuration;
    let now = Timestamp::now();
    let ago = |secs: i64| (now - SignedDuration::from_secs(secs)).as_millisecond();
    let keep = now.as_millisecond() + 86_400_000;
    db.store.close().await;
    // The database as the release before counters left it.
    let rows = [
        ("", ago(30), 1),
        ("amount", ago(600), 30),
        ("amount", ago(120), 20),
        ("amount", ago(60), -50),
    ];
    let mut sql = vec![
        "DROP TABLE usage_counters".to_owned(),
        "DELETE FROM _sqlx_migrations WHERE version = 13".to_owned(),
        "CREATE TABLE usage_events (agent_id TEXT NOT NULL, at_ms BIGINT NOT NULL, arg TEXT NOT NULL, \
         amount BIGINT NOT NULL, keep_until_ms BIGINT NOT NULL DEFAULT 0)"
            .to_owned(),
    ];
    for (arg, at_ms, amount) in rows {
        sql.push(format!(
            "INSERT INTO usage_events VALUES ('payer', {at_ms}, '{arg}', {amount}, {keep})"
        ));
    }
    for statement in sql {
        execute(&db, statement).await;
    }
    let store = Store::connect(&db.url).await.unwrap();
    let agent: AgentId = id("payer");
    let per = |m: i64| SignedDuration::from_mins(m);
    let need = LimitNeed {
        agent: &agent,
        rate: Some(Rate {
            count: 0,
            per: per(1),
        }),
        budgets: vec![("amount", per(60)), ("amount", per(5))],
    };
    let snapshot = store.usage_snapshot(&[need], now).await.unwrap();
    let used = |rate: Option<Rate>, spend: &[Spend]| snapshot.check(&agent, now, rate, spend);
    assert!(matches!(
        used(
            Some(Rate {
                count: 0,
                per: per(1)
            }),
            &[]
        ),
        Some(LimitHit::Rate { used: 1, .. })
    ));
    let budget = |m| Spend {
        arg: "amount".to_owned(),
        amount: 1,
        max: 0,
        per: per(m),
    };
    assert!(matches!(
        used(None, &[budget(60)]),
        Some(LimitHit::Budget { used: 50, .. })
    ));
    assert!(matches!(
        used(None, &[budget(5)]),
        Some(LimitHit::Budget { used: 20, .. })
    ));
    store.close().await;
}
on_both!(usage_rows_become_counters_on_upgrade);

/// Decisions logged before usage was kept are counted by the upgrade that
/// adds it, exactly as the writer counts them (arguments aside: those are
/// not gathered again).
async fn logged_decisions_become_activity_on_upgrade(db: Db) {
    let log = AuditLog::start(db.store.clone());
    let decision = |action: &str, effect: Effect, reason: Option<ReasonCode>| {
        let mut body = EventBody::new(EventType::Decision, Timestamp::now(), "agent:payer");
        body.agent = Some("payer".into());
        body.action = Some(action.into());
        body.decision = Some(effect);
        body.reasons = reason.map(|code| {
            vec![Reason {
                code,
                message: "test".into(),
                source: None,
            }]
        });
        body.args = Some(serde_json::json!({"amount": 5}));
        body
    };
    for body in [
        decision("pay", Effect::Allow, Some(ReasonCode::Granted)),
        decision("pay", Effect::Allow, Some(ReasonCode::Granted)),
        decision("pay", Effect::Deny, Some(ReasonCode::ArgConstraint)),
        decision("refund", Effect::Deny, None),
        EventBody::new(EventType::Lifecycle, Timestamp::now(), "principal:admin"),
    ] {
        log.append(body).await.unwrap();
    }
    let agent: AgentId = id("payer");
    let since = Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let counted = |rows: Vec<bridle_core::activity::ActionActivity>| {
        let mut v: Vec<(String, Effect, String, i64)> = rows
            .into_iter()
            .map(|a| (a.action, a.effect, a.reason, a.uses))
            .collect();
        v.sort();
        v
    };
    let live = db.store.activity(&agent, since).await.unwrap();
    let allowed = live.iter().find(|a| a.effect == Effect::Allow).unwrap();
    assert_eq!(allowed.args["amount"].max, Some(5));
    let live = counted(live);
    assert_eq!(
        live,
        vec![
            ("pay".into(), Effect::Allow, "granted".into(), 2),
            ("pay".into(), Effect::Deny, "arg_constraint".into(), 1),
            ("refund".into(), Effect::Deny, "refused".into(), 1),
        ]
    );
    db.store.close().await;
    // The database as the release before usage left it.
    for statement in [
        "DROP TABLE agent_activity",
        "DELETE FROM _sqlx_migrations WHERE version = 14",
    ] {
        execute(&db, statement.to_owned()).await;
    }
    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(counted(store.activity(&agent, since).await.unwrap()), live);
    store.close().await;
}
on_both!(logged_decisions_become_activity_on_upgrade);
