//! P5: durable audit throughput — audited appends per second with group
//! commit, on SQLite (WAL, synchronous=FULL) and on PostgreSQL.
//!
//! `cargo bench -p bridle-store --bench audit` measures SQLite, and PostgreSQL
//! too when `BRIDLE_BENCH_POSTGRES_URL` names a server (`bench/audit.sh`
//! starts one with fsync on). Under `cargo test` it runs a tiny smoke pass.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

use std::time::{Duration, Instant};

use bridle_core::audit::{EventBody, EventType};
use bridle_store::{AuditLog, AuditRead, Store};

fn event(i: u64) -> EventBody {
    let mut b = EventBody::new(
        EventType::Decision,
        jiff::Timestamp::now(),
        "agent:procurement-bot",
    );
    b.agent = Some("procurement-bot".into());
    b.action = Some("procurement.create_purchase_request".into());
    b.decision = Some(bridle_core::Effect::Allow);
    b.args = Some(serde_json::json!({"vendor": "acme", "amount": i % 5000}));
    b.reasons = Some(vec![bridle_core::Reason {
        code: bridle_core::ReasonCode::Granted,
        message: "granted by tools[1] (line 13)".into(),
        source: None,
    }]);
    b
}

/// `writers` concurrent callers, each appending and awaiting durability, for
/// `duration`; returns (events, seconds).
async fn run(store: &Store, writers: usize, duration: Duration) -> (u64, f64) {
    let log = AuditLog::start(store.clone());
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    log.append(event(w as u64 * 1_000_000 + n)).await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    (total, start.elapsed().as_secs_f64())
}

async fn measure(name: &str, url: &str, writers: usize, duration: Duration) {
    let store = Store::connect(url).await.unwrap();
    let (events, secs) = run(&store, writers, duration).await;
    let verify = store.verify_audit().await.unwrap();
    assert!(verify.ok, "chain broken after the bench");
    println!(
        "{name:<10} {writers:>4} writers  {events:>8} events in {secs:>5.2} s  = {:>8.0} audited events/s  (chain verified: {} events)",
        events as f64 / secs,
        verify.events
    );
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (duration, writers): (Duration, &[usize]) = if bench {
        (Duration::from_secs(5), &[1, 64, 512])
    } else {
        (Duration::from_millis(200), &[16])
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "P5: durable audit throughput (target: SQLite >= 20,000/s, PostgreSQL >= 10,000/s)"
        );
        for &w in writers {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/audit.db", dir.path().display());
            measure("sqlite", &url, w, duration).await;
        }
        let pg = std::env::var("BRIDLE_BENCH_POSTGRES_URL").ok();
        match pg {
            Some(base) if bench => {
                for &w in writers {
                    let name = format!("bench_audit_{}_{w}", std::process::id());
                    let admin = sqlx::PgPool::connect(&base).await.unwrap();
                    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                        .execute(&admin)
                        .await
                        .unwrap();
                    admin.close().await;
                    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
                    measure("postgres", &url, w, duration).await;
                }
            }
            _ => println!(
                "postgres   (skipped: set BRIDLE_BENCH_POSTGRES_URL, or run bench/audit.sh)"
            ),
        }
    });
}
