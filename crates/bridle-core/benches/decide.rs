//! Benchmarks for the decision-engine quality targets (`shared/spec/quality.md`):
//!
//! - P1: in-process decision for an agent with 50 tool grants, p50 ≤ 10 µs,
//!   p99 ≤ 50 µs (an allowed action, and a denied one, which also runs the
//!   explanation pass);
//! - P2: `Engine::decide` ≤ 1.5× a bare `cedar_policy::Authorizer::is_authorized`
//!   on the same agent's policies (request prebuilt, and request built in the
//!   loop the way the engine builds it);
//! - P3: lookup-by-id + decide at 100,000 registered agents ≤ 1.2× at 10.
//!
//! Criterion measures means/medians; afterwards a custom pass times every
//! single decision with `Instant` (arms interleaved in blocks, so the noisy
//! shared machine affects both sides of every ratio alike) and prints
//! p50/p99/p99.9 and the ratios. Results and commands: `docs/benchmarks.md`.
//!
//! `cargo bench -p bridle-core --bench decide` runs everything (about 3–4
//! minutes on 2 cores). Under `cargo test --all-targets` the binary runs in
//! test mode with a 1,000-agent fleet and a short latency pass.
//! Environment: `BRIDLE_BENCH_FLEET` (fleet size, default 40000: compiling
//! is ~650 agents/s, so 100,000 takes ~2.5 min more — run it with
//! `BRIDLE_BENCH_FLEET=100000`), `BRIDLE_BENCH_SAMPLES` (timed decisions per
//! arm, default 100000).
//!
//! Layout: the fixtures live in `decide/fixtures.rs`, the P2 bare-Cedar arm in
//! `decide/bare.rs`, the per-decision latency pass in `decide/latency.rs`; the
//! criterion groups and `main` are here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark fixtures: a broken fixture should abort the run loudly"
)]

#[path = "decide/bare.rs"]
mod bare;
#[path = "decide/fixtures.rs"]
mod fixtures;
#[path = "decide/latency.rs"]
mod latency;

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;

use crate::bare::Bare;
use crate::fixtures::Fixtures;
use crate::latency::{XorShift, latency_report};

// ---------------------------------------------------------------- criterion

fn criterion_benches(c: &mut Criterion, fx: &Fixtures) {
    let mut g = c.benchmark_group("p1");
    g.bench_function("decide_allow_50_grants", |b| {
        b.iter(|| {
            fx.decide_for(
                black_box(&fx.caller),
                black_box(fx.allow_name),
                black_box(&fx.allow_args),
            )
        });
    });
    g.bench_function("decide_deny_arg_constraint_50_grants", |b| {
        b.iter(|| {
            fx.decide_for(
                black_box(&fx.caller),
                black_box(fx.allow_name),
                black_box(&fx.deny_args),
            )
        });
    });
    g.finish();

    let bare = Bare::new(fx);
    let mut g = c.benchmark_group("p2");
    g.bench_function("engine_decide", |b| {
        b.iter(|| {
            fx.decide_for(
                black_box(&fx.caller),
                black_box(fx.allow_name),
                black_box(&fx.allow_args),
            )
        });
    });
    g.bench_function("bare_is_authorized_prebuilt_request", |b| {
        b.iter(|| bare.authorize(black_box(&bare.prebuilt)));
    });
    g.bench_function("bare_is_authorized_with_request_build", |b| {
        b.iter(|| black_box(&bare).build_and_authorize());
    });
    g.finish();

    let mut g = c.benchmark_group("p3");
    let sizes_differ = fx.large.len() != fx.small.len();
    for (n, map) in [(fx.small.len(), &fx.small), (fx.large.len(), &fx.large)] {
        if n == fx.large.len() && !sizes_differ && !std::ptr::eq(map, &fx.small) {
            continue;
        }
        g.bench_function(format!("caller_lookup_decide/{n}"), |b| {
            b.iter(|| fx.lookup_decide(black_box(map), black_box(&fx.caller_id)));
        });
    }
    for (n, map, members) in [
        (fx.small.len(), &fx.small, &fx.small_members),
        (fx.large.len(), &fx.large, &fx.large_members),
    ] {
        if n == fx.large.len() && !sizes_differ && !std::ptr::eq(map, &fx.small) {
            continue;
        }
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        g.bench_function(format!("random_member_lookup_decide/{n}"), |b| {
            b.iter(|| {
                let m = &members[rng.below(members.len())];
                fx.lookup_decide_member(black_box(map), m)
            });
        });
    }
    g.finish();
}

// ---------------------------------------------------------------- main

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.replace('_', "").parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let list = has("--list");
    // Criterion's own rule: without `--bench` (e.g. `cargo test --all-targets`)
    // it runs every benchmark once as a test. Keep that mode quick.
    let bench_mode = has("--bench") && !has("--test") && !list;

    let fleet_n =
        env_usize("BRIDLE_BENCH_FLEET").unwrap_or(if bench_mode { 40_000 } else { 1_000 });
    let samples =
        env_usize("BRIDLE_BENCH_SAMPLES").unwrap_or(if bench_mode { 100_000 } else { 2_000 });

    let fx = Fixtures::new(fleet_n.max(10));
    fx.check();

    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    criterion_benches(&mut c, &fx);
    c.final_summary();

    if !list {
        latency_report(&fx, samples);
    }
}
