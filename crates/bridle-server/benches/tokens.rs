//! P6 (`shared/spec/quality.md`): token mint and verify p99 ≤ 100 µs each
//! (EdDSA), and what a decision pays to authenticate its token: the full
//! check (signature, claims, revocation and agent rows from the store)
//! against the same check answered by the verified-token cache.
//!
//! Criterion measures means/medians; afterwards a custom pass times every
//! call with `Instant`, arms interleaved in blocks so the shared machine's
//! noise falls on all arms alike, and prints p50/p99. The store is a real
//! SQLite file (WAL, `synchronous=FULL`) in a temp dir.
//!
//! `cargo bench -p bridle-server --bench tokens` (about a minute on 2
//! cores). Under `cargo test --all-targets` it runs once, quickly, as a
//! test. `BRIDLE_BENCH_SAMPLES` sets the timed calls per arm (default 20000).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark fixtures: a broken fixture should abort the run loudly"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bridle_core::Manifest;
use bridle_server::auth::{Presentation, verify_agent_token};
use bridle_server::tokens::Claims;
use bridle_server::{AppState, Config};
use bridle_store::{CredentialStore, NewToken, RegistryWrite, Store};
use criterion::Criterion;

struct Fixture {
    state: AppState,
    /// The same store and keys, with the token cache turned off.
    uncached: AppState,
    claims: Claims,
    token: String,
    issuer: String,
}

#[expect(
    clippy::disallowed_methods,
    reason = "the bench seeds an issued token row the way the token endpoint does"
)]
async fn fixture(dir: &std::path::Path) -> Fixture {
    let url = format!("sqlite://{}/bridle.db", dir.display());
    let store = Store::connect(&url).await.unwrap();
    let source = include_str!("../../../examples/swe-bot.yaml");
    let manifest = Manifest::from_source(source).unwrap();
    store
        .apply_manifest(
            &manifest,
            source,
            &"bob".parse().unwrap(),
            &serde_json::json!([]),
        )
        .await
        .unwrap();
    let config = Config {
        db: url.clone(),
        ..Config::default()
    };
    let issuer = config.issuer();
    let kek = bridle_server::kek::open_store(&config, &store)
        .await
        .unwrap();
    let state = AppState::new(store, config.clone(), kek).await.unwrap();
    let store = Store::connect(&url).await.unwrap();
    let kek = bridle_server::kek::open_store(&config, &store)
        .await
        .unwrap();
    let uncached = AppState::new(
        store,
        Config {
            token_cache_ms: 0,
            ..config
        },
        kek,
    )
    .await
    .unwrap();
    let now = jiff::Timestamp::now();
    let claims = Claims {
        iss: issuer.clone(),
        sub: "swe-bot".into(),
        aud: issuer.clone(),
        client_id: "swe-bot.bench".into(),
        iat: now.as_second(),
        exp: now.as_second() + 3600,
        jti: "bench-jti".parse().unwrap(),
        scope: None,
        act: None,
        cnf: None,
    };
    let token = state.keys().mint(&claims).unwrap();
    state
        .store()
        .record_token(&NewToken {
            jti: &claims.jti,
            agent: &"swe-bot".parse().unwrap(),
            client_id: &claims.client_id.parse().unwrap(),
            expires_at: now + jiff::SignedDuration::from_hours(1),
            parent_jti: None,
        })
        .await
        .unwrap();
    Fixture {
        state,
        uncached,
        claims,
        token,
        issuer,
    }
}

fn percentiles(mut ns: Vec<u64>) -> (f64, f64) {
    ns.sort_unstable();
    let q = |p: f64| ns[((ns.len() as f64 * p) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    (q(0.50), q(0.99))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let list = has("--list");
    let bench_mode = has("--bench") && !has("--test") && !list;
    let samples: usize = std::env::var("BRIDLE_BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench_mode { 20_000 } else { 500 });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = rt.block_on(fixture(dir.path()));
    let keys = fx.state.keys();
    // The fixture is right: both paths accept the token.
    rt.block_on(async {
        verify_agent_token(&fx.state, &fx.token, Presentation::default())
            .await
            .unwrap();
        verify_agent_token(&fx.uncached, &fx.token, Presentation::default())
            .await
            .unwrap();
    });

    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut g = c.benchmark_group("p6");
    g.bench_function("mint", |b| {
        b.iter(|| keys.mint(black_box(&fx.claims)).unwrap())
    });
    g.bench_function("verify", |b| {
        b.iter(|| keys.verify(black_box(&fx.token), &fx.issuer).unwrap())
    });
    g.bench_function("decision_token_check_cached", |b| {
        b.to_async(&rt).iter(|| async {
            verify_agent_token(&fx.state, black_box(&fx.token), Presentation::default())
                .await
                .unwrap()
        })
    });
    g.bench_function("decision_token_check_uncached", |b| {
        b.to_async(&rt).iter(|| async {
            verify_agent_token(&fx.uncached, black_box(&fx.token), Presentation::default())
                .await
                .unwrap()
        })
    });
    g.finish();
    c.final_summary();
    if list {
        return;
    }

    // Per-call latency, arms interleaved in blocks of 1000.
    const BLOCK: usize = 1000;
    let names = [
        "mint (EdDSA sign, RFC 9068 claims)",
        "verify (signature + claims)",
        "decision token check, cached",
        "decision token check, uncached (2 store reads)",
    ];
    let mut times: Vec<Vec<u64>> = names.iter().map(|_| Vec::with_capacity(samples)).collect();
    let mut done = 0;
    while done < samples {
        let n = BLOCK.min(samples - done);
        for _ in 0..n {
            let t = Instant::now();
            black_box(keys.mint(black_box(&fx.claims)).unwrap());
            times[0].push(t.elapsed().as_nanos() as u64);
        }
        for _ in 0..n {
            let t = Instant::now();
            black_box(keys.verify(black_box(&fx.token), &fx.issuer).unwrap());
            times[1].push(t.elapsed().as_nanos() as u64);
        }
        rt.block_on(async {
            for (i, state) in [(2, &fx.state), (3, &fx.uncached)] {
                for _ in 0..n {
                    let t = Instant::now();
                    black_box(
                        verify_agent_token(state, black_box(&fx.token), Presentation::default())
                            .await
                            .unwrap(),
                    );
                    times[i].push(t.elapsed().as_nanos() as u64);
                }
            }
        });
        done += n;
    }
    println!(
        "\n== P6: per-call latency ({samples} calls per arm, interleaved in blocks of {BLOCK}) =="
    );
    let mut p = Vec::new();
    for (name, t) in names.iter().zip(times) {
        let (p50, p99) = percentiles(t);
        println!("  {name:<48} p50 {p50:>8.2} µs   p99 {p99:>8.2} µs");
        p.push((p50, p99));
    }
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "  => P6 mint p99 {:.2} µs ({}), verify p99 {:.2} µs ({})",
        p[0].1,
        verdict(p[0].1 <= 100.0),
        p[1].1,
        verdict(p[1].1 <= 100.0)
    );
    println!(
        "  => a decision's token check: cached p50 {:.2} µs vs uncached {:.2} µs ({:.1}× cheaper)",
        p[2].0,
        p[3].0,
        p[3].0 / p[2].0
    );
}
