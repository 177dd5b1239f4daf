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

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark fixtures: a broken fixture should abort the run loudly"
)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bridle_core::cedar::{invoke_uid, json_to_cedar, tool_uid};
use bridle_core::id::AgentId;
use bridle_core::ledger::MemoryLedger;
use bridle_core::manifest::schedule::day_name;
use bridle_core::{
    ActionRequest, AgentState, CompiledAgent, Decision, DecisionInput, Effect, Engine, Guardrails,
    Manifest, NoApprovals, ReasonCode, Subject,
};
use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, EntityUid, PolicySet, Request,
    ResourceConstraint, RestrictedExpression,
};
use criterion::Criterion;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};

type Args = Map<String, Value>;

// ---------------------------------------------------------------- fixtures

/// The calling agent: 50 tool grants (literals, globs, argument constraints),
/// a few forbids, one data grant.
fn caller_yaml() -> String {
    let mut s = String::from(
        "agent: bench-caller\n\
         name: Benchmark agent with 50 tool grants\n\
         owner: alice\n\
         team: platform\n\
         purpose: Exercise the decision engine\n\
         environment: prod\n\
         expires: 2099-12-31\n\
         tools:\n",
    );
    for i in 0..50 {
        // Every tenth grant (7, 17, …, 47) is a glob.
        let name = if i % 10 == 7 {
            format!("svc{i}.*")
        } else {
            format!("svc{i}.op{i}")
        };
        let _ = writeln!(s, "  - name: \"{name}\"");
        match i % 4 {
            1 => s.push_str(
                "    access: write\n    args:\n      vendor: { in: [acme, globex, initech] }\n      amount: { min: 1, max: 100000 }\n",
            ),
            2 => {
                let _ = writeln!(s, "    args:\n      path: {{ prefix: \"/srv/svc{i}/\" }}");
            }
            3 => s.push_str("    args:\n      limit: { max: 500 }\n      mode: { in: [fast, safe] }\n"),
            _ => {}
        }
    }
    s.push_str(
        "forbid: [\"svc7.delete_*\", \"admin.*\", \"svc3.op3_drop\", \"*.export_all\"]\n\
         data:\n  - { resource: \"crm:cases/*\", access: [read, write] }\n",
    );
    s
}

/// A small fleet agent (5 grants), varied by index.
fn fleet_yaml(i: usize) -> String {
    let env = ["dev", "staging", "prod"][i % 3];
    let data = if i.is_multiple_of(3) {
        format!(
            "data:\n  - {{ resource: \"kb{}:docs/*\", access: [read] }}\n",
            i % 97
        )
    } else {
        String::new()
    };
    format!(
        "agent: fleet-{i}\n\
         owner: owner{o}\n\
         purpose: Fleet agent {i}\n\
         environment: {env}\n\
         expires: 2099-12-31\n\
         tools:\n\
         \x20 - name: kb{k}.search\n\
         \x20 - name: \"kb{k}.get_*\"\n\
         \x20 - name: pay{p}.send\n\
         \x20   access: write\n\
         \x20   args:\n\
         \x20     amount: {{ min: 1, max: {max} }}\n\
         \x20     currency: {{ in: [eur, usd] }}\n\
         \x20 - name: fs.write\n\
         \x20   access: write\n\
         \x20   args:\n\
         \x20     path: {{ prefix: \"/home/a{i}/\" }}\n\
         \x20 - name: mail.send\n\
         \x20   args:\n\
         \x20     to: {{ in: [\"team{t}@example.com\", \"ops@example.com\"] }}\n\
         forbid: [\"admin.*\"]\n\
         {data}",
        o = i % 1000,
        k = i % 97,
        p = i % 13,
        max = 1000 + i,
        t = i % 50,
    )
}

fn compile(yaml: &str) -> CompiledAgent {
    let m = Manifest::from_source(yaml).unwrap_or_else(|e| panic!("{e:?}\n{yaml}"));
    CompiledAgent::compile(m, &Guardrails::new()).unwrap()
}

fn args(v: Value) -> Args {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// Resident set size of this process, from /proc (0 if unavailable).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

struct Fixtures {
    engine: Engine,
    ledger: MemoryLedger,
    now: Timestamp,
    caller: CompiledAgent,
    caller_id: AgentId,
    /// Allowed: literal grant `tools[25]` (`svc25.op25`), typed args, data resource.
    allow_name: &'static str,
    allow_args: Args,
    /// Denied by `tools[25].args.amount.max`.
    deny_args: Args,
    resource: Option<&'static str>,
    /// The 10-agent and the N-agent registries; both hold the caller.
    small: HashMap<AgentId, CompiledAgent>,
    /// A 1,000-agent registry (caller + 999), to show where cold caches set in.
    mid: HashMap<AgentId, CompiledAgent>,
    mid_members: Vec<(AgentId, usize)>,
    large: HashMap<AgentId, CompiledAgent>,
    /// Ids of the fleet members of each registry (caller excluded).
    small_members: Vec<(AgentId, usize)>,
    large_members: Vec<(AgentId, usize)>,
    member_tools: Vec<String>,
    member_args: Args,
    fleet_n: usize,
}

impl Fixtures {
    fn new(fleet_n: usize) -> Self {
        let caller = compile(&caller_yaml());
        let caller_id = caller.manifest().agent.clone();

        eprintln!("[fixtures] compiling a fleet of {fleet_n} agents (caller included) …");
        let rss0 = rss_bytes();
        let t0 = Instant::now();
        let mut large = HashMap::with_capacity(fleet_n);
        let mut large_members = Vec::with_capacity(fleet_n);
        large.insert(caller_id.clone(), caller.clone());
        for i in 0..fleet_n.saturating_sub(1) {
            let a = compile(&fleet_yaml(i));
            let id = a.manifest().agent.clone();
            large_members.push((id.clone(), i));
            large.insert(id, a);
        }
        let took = t0.elapsed();
        let rss1 = rss_bytes();
        let members = fleet_n.saturating_sub(1).max(1);
        eprintln!(
            "[fixtures] compiled {} fleet agents in {:.1} s ({:.0} agents/s, {:.1} µs each); \
             RSS grew by {:.0} MiB (~{:.1} KiB per compiled agent)",
            fleet_n.saturating_sub(1),
            took.as_secs_f64(),
            members as f64 / took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / members as f64,
            (rss1.saturating_sub(rss0)) as f64 / (1024.0 * 1024.0),
            (rss1.saturating_sub(rss0)) as f64 / 1024.0 / members as f64,
        );

        // The 10-agent registry: the caller and the first 9 fleet agents
        // (same compiled values, shared through the `Arc` inside).
        let mut small = HashMap::new();
        small.insert(caller_id.clone(), caller.clone());
        let small_members: Vec<(AgentId, usize)> = large_members.iter().take(9).cloned().collect();
        for (id, _) in &small_members {
            small.insert(id.clone(), large[id].clone());
        }

        let mid_members: Vec<(AgentId, usize)> = large_members.iter().take(999).cloned().collect();
        let mut mid = HashMap::new();
        mid.insert(caller_id.clone(), caller.clone());
        for (id, _) in &mid_members {
            mid.insert(id.clone(), large[id].clone());
        }

        Self {
            engine: Engine::new(),
            ledger: MemoryLedger::new(),
            now: "2026-06-15T12:34:56Z".parse().unwrap(),
            caller,
            caller_id,
            allow_name: "svc25.op25",
            allow_args: args(json!({"vendor": "acme", "amount": 2500, "note": "bench"})),
            deny_args: args(json!({"vendor": "acme", "amount": 250_000, "note": "bench"})),
            resource: Some("crm:cases/42"),
            small,
            mid,
            mid_members,
            large,
            small_members,
            large_members,
            member_tools: (0..13).map(|p| format!("pay{p}.send")).collect(),
            member_args: args(json!({"amount": 500, "currency": "eur"})),
            fleet_n,
        }
    }

    fn decide_for(&self, agent: &CompiledAgent, name: &str, args: &Args) -> Decision {
        let subjects = [Subject {
            agent,
            state: AgentState::Active,
            elevations: &[],
        }];
        let input = DecisionInput {
            subjects: &subjects,
            scope: None,
            action: ActionRequest {
                name,
                args,
                resource: self.resource,
            },
            now: self.now,
        };
        self.engine.decide(&input, &self.ledger, &NoApprovals)
    }

    fn decide_member(&self, agent: &CompiledAgent, i: usize) -> Decision {
        let subjects = [Subject {
            agent,
            state: AgentState::Active,
            elevations: &[],
        }];
        let input = DecisionInput {
            subjects: &subjects,
            scope: None,
            action: ActionRequest {
                name: &self.member_tools[i % 13],
                args: &self.member_args,
                resource: None,
            },
            now: self.now,
        };
        self.engine.decide(&input, &self.ledger, &NoApprovals)
    }

    /// Lookup by id, then decide: the P3 unit of work for the caller.
    fn lookup_decide(&self, map: &HashMap<AgentId, CompiledAgent>, id: &AgentId) -> Decision {
        let agent = map.get(id).unwrap();
        self.decide_for(agent, self.allow_name, &self.allow_args)
    }

    /// Lookup by id, then decide, for a fleet member (varied callers).
    fn lookup_decide_member(
        &self,
        map: &HashMap<AgentId, CompiledAgent>,
        (id, i): &(AgentId, usize),
    ) -> Decision {
        let agent = map.get(id).unwrap();
        self.decide_member(agent, *i)
    }

    fn check(&self) {
        let d = self.decide_for(&self.caller, self.allow_name, &self.allow_args);
        assert_eq!(d.effect, Effect::Allow, "{d:?}");
        let d = self.decide_for(&self.caller, self.allow_name, &self.deny_args);
        assert_eq!(d.effect, Effect::Deny, "{d:?}");
        assert_eq!(d.reasons[0].code, ReasonCode::ArgConstraint, "{d:?}");
        let d = self.decide_for(&self.caller, "svc17.anything", &self.allow_args);
        assert_eq!(d.effect, Effect::Allow, "glob grant: {d:?}");
        for m in self
            .small_members
            .iter()
            .chain(self.large_members.iter().take(100))
        {
            let d = self.lookup_decide_member(&self.large, m);
            assert_eq!(d.effect, Effect::Allow, "{}: {d:?}", m.0);
        }
        let bare = Bare::new(self);
        let r = bare.authorize(&bare.prebuilt);
        assert_eq!(r, CedarDecision::Allow);
        assert_eq!(self.caller.policies().policies().count(), 54);
    }
}

// ---------------------------------------------------------------- P2 bare arm

/// Cedar alone: the caller's policies, a request built exactly the way
/// `Engine::request` builds it (principal, `Action::"invoke"`, `Tool::name`,
/// context `tool`, `args`, `time`, `elevations`, `patterns`, `resource`).
struct Bare<'a> {
    fx: &'a Fixtures,
    authorizer: Authorizer,
    entities: Entities,
    action: EntityUid,
    prebuilt: Request,
    /// Reference only: 54 scope-only policies (no `when`), the floor of
    /// Cedar's per-policy cost for a policy set of the caller's size.
    scope_only: PolicySet,
    /// Reference only: the caller's policies that can apply to the tool at
    /// all (resource scope unconstrained, i.e. globs, or `== Tool::name`).
    sliced: PolicySet,
}

impl<'a> Bare<'a> {
    fn new(fx: &'a Fixtures) -> Self {
        let action = invoke_uid();
        let prebuilt = build_request(fx, &action);
        let scope_only: String = (0..fx.caller.policies().policies().count())
            .map(|i| {
                format!(
                    "permit (principal == Agent::\"bench-caller\", action == Action::\"invoke\", resource == Tool::\"svc{i}.op{i}\");\n"
                )
            })
            .collect();
        let tool = tool_uid(fx.allow_name);
        let mut sliced = PolicySet::new();
        for p in fx.caller.policies().policies() {
            match p.resource_constraint() {
                ResourceConstraint::Any => {}
                ResourceConstraint::Eq(uid) if uid == tool => {}
                _ => continue,
            }
            sliced.add(p.clone()).unwrap();
        }
        Self {
            fx,
            authorizer: Authorizer::new(),
            entities: Entities::empty(),
            action,
            prebuilt,
            scope_only: scope_only.parse().unwrap(),
            sliced,
        }
    }

    fn authorize(&self, request: &Request) -> CedarDecision {
        self.authorizer
            .is_authorized(request, self.fx.caller.policies(), &self.entities)
            .decision()
    }

    fn authorize_scope_only(&self) -> CedarDecision {
        self.authorizer
            .is_authorized(&self.prebuilt, &self.scope_only, &self.entities)
            .decision()
    }

    fn authorize_empty(&self) -> CedarDecision {
        self.authorizer
            .is_authorized(&self.prebuilt, &PolicySet::new(), &self.entities)
            .decision()
    }

    fn authorize_sliced(&self) -> CedarDecision {
        self.authorizer
            .is_authorized(&self.prebuilt, &self.sliced, &self.entities)
            .decision()
    }

    fn build_and_authorize(&self) -> CedarDecision {
        let request = build_request(self.fx, &self.action);
        self.authorize(&request)
    }
}

fn build_request(fx: &Fixtures, action: &EntityUid) -> Request {
    let local = fx.now.to_zoned_datetime(TimeZone::UTC);
    let args = RestrictedExpression::new_record(
        fx.allow_args
            .iter()
            .filter_map(|(k, v)| json_to_cedar(v).map(|e| (k.clone(), e))),
    )
    .unwrap();
    let time = RestrictedExpression::new_record([
        (
            "epoch".to_owned(),
            RestrictedExpression::new_long(local.timestamp().as_second()),
        ),
        (
            "hour".to_owned(),
            RestrictedExpression::new_long(i64::from(local.hour())),
        ),
        (
            "minute".to_owned(),
            RestrictedExpression::new_long(i64::from(local.minute())),
        ),
        (
            "weekday".to_owned(),
            RestrictedExpression::new_string(day_name(local.weekday()).to_owned()),
        ),
        (
            "date".to_owned(),
            RestrictedExpression::new_string(local.date().to_string()),
        ),
    ])
    .unwrap();
    let mut pairs = vec![
        (
            "tool".to_owned(),
            RestrictedExpression::new_string(fx.allow_name.to_owned()),
        ),
        ("args".to_owned(), args),
        ("time".to_owned(), time),
        (
            "elevations".to_owned(),
            RestrictedExpression::new_set(std::iter::empty()),
        ),
        // The caller has no `pattern` constraints, so the engine's set is empty too.
        (
            "patterns".to_owned(),
            RestrictedExpression::new_set(std::iter::empty()),
        ),
    ];
    if let Some(r) = fx.resource {
        pairs.push((
            "resource".to_owned(),
            RestrictedExpression::new_string(r.to_owned()),
        ));
    }
    let context = Context::from_pairs(pairs).unwrap();
    Request::new(
        fx.caller.principal().clone(),
        action.clone(),
        tool_uid(fx.allow_name),
        context,
        None,
    )
    .unwrap()
}

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

// ---------------------------------------------------------------- percentiles

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
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

fn latency_report(fx: &Fixtures, samples: usize) {
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
