//! Usage kept for people (issue "Visibility"): reading one agent's usage
//! for 30 days out of a fleet of 1,000 agents that decided 10 times a
//! minute each (target: < 200 ms). The aggregates are made directly, as the
//! audit writer would have left them: per agent and hour, one row of
//! allowed decisions (with argument values), one of denials and one of
//! approvals asked.
//!
//! `cargo bench -p bridle-store --bench activity` measures SQLite, and
//! PostgreSQL too when `BRIDLE_BENCH_POSTGRES_URL` names a server. Under
//! `cargo test` it runs a tiny smoke pass.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a bench fails by panicking: an unexpected shape should abort it loudly"
)]

use std::time::{Duration, Instant};

use bridle_core::id::AgentId;
use bridle_store::Store;

const HOURS: i64 = 30 * 24;

/// The statement filling `agent_activity` for `agents` agents over the 30
/// days before `now_hour` (the same text on both backends).
fn fill(agents: usize, now_hour: i64) -> String {
    let args = r#"{"amount":{"min":1,"max":4999,"values":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32],"more":true},"vendor":{"values":["acme","globex"]}}"#;
    format!(
        "WITH RECURSIVE a(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM a WHERE n < {last_agent}), \
         h(n) AS (SELECT {first} UNION ALL SELECT n + 1 FROM h WHERE n < {now_hour}), \
         k(effect, reason, uses, args) AS (VALUES \
           ('allow', 'granted', 590, '{args}'), \
           ('deny', 'arg_constraint', 8, '{{}}'), \
           ('approval_required', 'approval_required', 2, '{{}}')) \
         INSERT INTO agent_activity (agent_id, hour, action, effect, reason, uses, last_at, args) \
         SELECT 'agent-' || a.n, h.n, 'procurement.create_purchase_request', k.effect, k.reason, \
                k.uses, '2026-12-01T12:00:00.000000Z', k.args \
         FROM a CROSS JOIN h CROSS JOIN k",
        last_agent = agents - 1,
        first = now_hour - HOURS + 1,
    )
}

async fn measure(name: &str, url: &str, agents: usize, reads: usize) {
    let store = Store::connect(url).await.unwrap();
    let now = jiff::Timestamp::now();
    let now_hour = now.as_second().div_euclid(3600);
    let t = Instant::now();
    match store.backend() {
        bridle_store::Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(fill(agents, now_hour)))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        bridle_store::Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(fill(agents, now_hour)))
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("ANALYZE agent_activity")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
    let filled = t.elapsed();
    let since = now - jiff::SignedDuration::from_hours(HOURS);
    let mut times: Vec<Duration> = Vec::with_capacity(reads);
    for i in 0..reads {
        let agent: AgentId = format!("agent-{}", (i * 7919) % agents).parse().unwrap();
        let t = Instant::now();
        let activity = store.activity(&agent, since).await.unwrap();
        times.push(t.elapsed());
        let allowed = activity
            .iter()
            .find(|a| a.effect == bridle_core::Effect::Allow)
            .unwrap();
        assert_eq!(allowed.uses, 590 * HOURS);
        assert_eq!(allowed.args["amount"].max, Some(4999));
    }
    times.sort();
    let p = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
    println!(
        "{name:<9} {agents} agents x {HOURS} hours x 3 rows (filled in {:.1} s): usage of 30 days for one agent p50 {:.2?}, p99 {:.2?}, max {:.2?} over {reads} reads",
        filled.as_secs_f64(),
        p(0.5),
        p(0.99),
        times.last().unwrap()
    );
    store.close().await;
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (agents, reads) = if bench { (1_000, 200) } else { (3, 5) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "Usage of 30 days for one agent of 1,000 at 10 decisions a minute (target < 200 ms)"
        );
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/activity.db", dir.path().display());
        measure("sqlite", &url, agents, reads).await;
        match std::env::var("BRIDLE_BENCH_POSTGRES_URL").ok() {
            Some(base) if bench => {
                let name = format!("bench_activity_{}", std::process::id());
                let admin = sqlx::PgPool::connect(&base).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
                let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
                measure("postgres", &url, agents, reads).await;
            }
            _ => println!("postgres  (skipped: set BRIDLE_BENCH_POSTGRES_URL)"),
        }
    });
}
