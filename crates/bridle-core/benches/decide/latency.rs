//! The custom latency pass: every single decision timed with `Instant`, arms
//! interleaved in blocks, p50/p99/p99.9 and the P1–P3 ratios printed.

use std::hint::black_box;
use std::time::Instant;

use crate::bare::Bare;
use crate::fixtures::Fixtures;

pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[derive(Clone, Copy)]
struct Stats {
    p50: f64,
    p99: f64,
    p999: f64,
    mean: f64,
    max: f64,
}

fn stats(mut ns: Vec<u64>) -> Stats {
    ns.sort_unstable();
    let q = |p: f64| ns[((ns.len() as f64 * p) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    Stats {
        p50: q(0.50),
        p99: q(0.99),
        p999: q(0.999),
        mean: ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0,
        max: *ns.last().unwrap_or(&0) as f64 / 1000.0,
    }
}

type Arm<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// Time every call of every arm, interleaving the arms in blocks so slow
/// phases of the shared machine fall on all arms alike.
fn measure(arms: &mut [Arm<'_>], samples: usize) -> Vec<Stats> {
    const BLOCK: usize = 1000;
    for (_, f) in arms.iter_mut() {
        for _ in 0..(samples / 20).max(100) {
            f();
        }
    }
    let mut times: Vec<Vec<u64>> = arms.iter().map(|_| Vec::with_capacity(samples)).collect();
    let mut done = 0;
    while done < samples {
        let n = BLOCK.min(samples - done);
        for ((_, f), t) in arms.iter_mut().zip(&mut times) {
            for _ in 0..n {
                let start = Instant::now();
                f();
                t.push(start.elapsed().as_nanos() as u64);
            }
        }
        done += n;
    }
    times.into_iter().map(stats).collect()
}

fn row(label: &str, s: &Stats) {
    println!(
        "  {label:<58} p50 {:>8.2} µs   p99 {:>8.2} µs   p99.9 {:>8.2} µs   mean {:>8.2} µs   max {:>9.1} µs",
        s.p50, s.p99, s.p999, s.mean, s.max
    );
}

pub(crate) fn latency_report(fx: &Fixtures, samples: usize) {
    println!(
        "\n== per-decision latency (each call timed with Instant; {samples} samples per arm, arms interleaved in blocks of 1000) =="
    );
    let empty = measure(&mut [("empty", Box::new(|| {}))], samples.min(100_000));
    row("timer overhead (empty closure)", &empty[0]);

    // P1
    println!("\nP1 (target: p50 ≤ 10 µs, p99 ≤ 50 µs; 50 tool grants)");
    let mut arms: Vec<Arm<'_>> = vec![
        (
            "decide, allowed (typed args + resource)",
            Box::new(|| {
                black_box(fx.decide_for(&fx.caller, fx.allow_name, black_box(&fx.allow_args)));
            }),
        ),
        (
            "decide, denied (arg_constraint, explain pass)",
            Box::new(|| {
                black_box(fx.decide_for(&fx.caller, fx.allow_name, black_box(&fx.deny_args)));
            }),
        ),
    ];
    let p1 = measure(&mut arms, samples);
    for ((label, _), s) in arms.iter().zip(&p1) {
        row(label, s);
    }
    drop(arms);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    for (i, what) in ["allowed", "denied"].iter().enumerate() {
        println!(
            "  => P1 {what}: p50 {:.2} µs ({}), p99 {:.2} µs ({})",
            p1[i].p50,
            verdict(p1[i].p50 <= 10.0),
            p1[i].p99,
            verdict(p1[i].p99 <= 50.0)
        );
    }

    // P2
    println!("\nP2 (target: engine ≤ 1.5× bare Cedar is_authorized, same policies)");
    let bare = Bare::new(fx);
    let mut arms: Vec<Arm<'_>> = vec![
        (
            "engine: Engine::decide (allowed)",
            Box::new(|| {
                black_box(fx.decide_for(&fx.caller, fx.allow_name, black_box(&fx.allow_args)));
            }),
        ),
        (
            "bare: is_authorized, request prebuilt",
            Box::new(|| {
                black_box(bare.authorize(black_box(&bare.prebuilt)));
            }),
        ),
        (
            "bare: build request + is_authorized",
            Box::new(|| {
                black_box(black_box(&bare).build_and_authorize());
            }),
        ),
        (
            "(reference) bare: 54 scope-only policies",
            Box::new(|| {
                black_box(black_box(&bare).authorize_scope_only());
            }),
        ),
        (
            leak(format!(
                "(reference) bare: sliced to the {} policies for the tool",
                bare.sliced.policies().count()
            )),
            Box::new(|| {
                black_box(black_box(&bare).authorize_sliced());
            }),
        ),
        (
            "(reference) bare: empty policy set",
            Box::new(|| {
                black_box(black_box(&bare).authorize_empty());
            }),
        ),
    ];
    let p2 = measure(&mut arms, samples);
    for ((label, _), s) in arms.iter().zip(&p2) {
        row(label, s);
    }
    drop(arms);
    for (i, what) in [(1, "bare prebuilt"), (2, "bare incl. request build")] {
        let r50 = p2[0].p50 / p2[i].p50;
        let rmean = p2[0].mean / p2[i].mean;
        println!(
            "  => P2 engine / {what}: p50 ratio {r50:.2}×, mean ratio {rmean:.2}× ({})",
            verdict(r50 <= 1.5)
        );
    }

    // P3
    println!(
        "\nP3 (target: p50 at {} agents ≤ 1.2× p50 at {} agents)",
        fx.large.len(),
        fx.small.len()
    );
    let mut r1 = XorShift(0x2545_f491_4f6c_dd1d);
    let mut r2 = XorShift(0x2545_f491_4f6c_dd1d);
    let mut r3 = XorShift(0x2545_f491_4f6c_dd1d);
    let mid_m_label = format!("random member lookup+decide, {} agents", fx.mid.len());
    let small_label = format!("caller lookup+decide, {} agents", fx.small.len());
    let large_label = format!("caller lookup+decide, {} agents", fx.large.len());
    let small_m_label = format!("random member lookup+decide, {} agents", fx.small.len());
    let large_m_label = format!("random member lookup+decide, {} agents", fx.large.len());
    let mut arms: Vec<Arm<'_>> = vec![
        (
            leak(small_label),
            Box::new(|| {
                black_box(fx.lookup_decide(black_box(&fx.small), &fx.caller_id));
            }),
        ),
        (
            leak(large_label),
            Box::new(|| {
                black_box(fx.lookup_decide(black_box(&fx.large), &fx.caller_id));
            }),
        ),
        (
            leak(small_m_label),
            Box::new(move || {
                let m = &fx.small_members[r1.below(fx.small_members.len())];
                black_box(fx.lookup_decide_member(black_box(&fx.small), m));
            }),
        ),
        (
            leak(mid_m_label),
            Box::new(move || {
                let m = &fx.mid_members[r3.below(fx.mid_members.len())];
                black_box(fx.lookup_decide_member(black_box(&fx.mid), m));
            }),
        ),
        (
            leak(large_m_label),
            Box::new(move || {
                let m = &fx.large_members[r2.below(fx.large_members.len())];
                black_box(fx.lookup_decide_member(black_box(&fx.large), m));
            }),
        ),
    ];
    let p3 = measure(&mut arms, samples);
    for ((label, _), s) in arms.iter().zip(&p3) {
        row(label, s);
    }
    drop(arms);
    let r = p3[1].p50 / p3[0].p50;
    println!(
        "  => P3 caller (50 grants): p50({}) / p50({}) = {r:.3}× ({})",
        fx.large.len(),
        fx.small.len(),
        verdict(r <= 1.2)
    );
    let r = p3[4].p50 / p3[2].p50;
    println!(
        "  => P3 random fleet member (5 grants, cold cache at large N): p50({}) / p50({}) = {r:.3}× ({})",
        fx.large.len(),
        fx.small.len(),
        verdict(r <= 1.2)
    );
    println!(
        "     same, p50({}) / p50({}) = {:.3}× (growth once the fleet no longer fits in cache)",
        fx.large.len(),
        fx.mid.len(),
        p3[4].p50 / p3[3].p50
    );
    if fx.fleet_n < 100_000 {
        println!(
            "  (fleet is {} agents, not 100,000: run with BRIDLE_BENCH_FLEET=100000 for the target's size)",
            fx.fleet_n
        );
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}
