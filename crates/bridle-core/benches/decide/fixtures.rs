//! The benchmark fixtures: the 50-grant calling agent, the fleet agents, the
//! 10-, 1,000- and N-agent registries, and the decisions every arm times.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use bridle_core::id::AgentId;
use bridle_core::ledger::MemoryLedger;
use bridle_core::{
    ActionRequest, AgentState, CompiledAgent, Decision, DecisionInput, Effect, Engine, Guardrails,
    Manifest, NoApprovals, ReasonCode, Subject,
};
use cedar_policy::Decision as CedarDecision;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::bare::Bare;

type Args = Map<String, Value>;

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

pub(crate) struct Fixtures {
    pub(crate) engine: Engine,
    pub(crate) ledger: MemoryLedger,
    pub(crate) now: Timestamp,
    pub(crate) caller: CompiledAgent,
    pub(crate) caller_id: AgentId,
    /// Allowed: literal grant `tools[25]` (`svc25.op25`), typed args, data resource.
    pub(crate) allow_name: &'static str,
    pub(crate) allow_args: Args,
    /// Denied by `tools[25].args.amount.max`.
    pub(crate) deny_args: Args,
    pub(crate) resource: Option<&'static str>,
    /// The 10-agent and the N-agent registries; both hold the caller.
    pub(crate) small: HashMap<AgentId, CompiledAgent>,
    /// A 1,000-agent registry (caller + 999), to show where cold caches set in.
    pub(crate) mid: HashMap<AgentId, CompiledAgent>,
    pub(crate) mid_members: Vec<(AgentId, usize)>,
    pub(crate) large: HashMap<AgentId, CompiledAgent>,
    /// Ids of the fleet members of each registry (caller excluded).
    pub(crate) small_members: Vec<(AgentId, usize)>,
    pub(crate) large_members: Vec<(AgentId, usize)>,
    pub(crate) member_tools: Vec<String>,
    pub(crate) member_args: Args,
    pub(crate) fleet_n: usize,
}

impl Fixtures {
    pub(crate) fn new(fleet_n: usize) -> Self {
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

    pub(crate) fn decide_for(&self, agent: &CompiledAgent, name: &str, args: &Args) -> Decision {
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
        let decided = self.engine.decide(&input, &self.ledger, &NoApprovals);
        decided.usage.commit(&self.ledger);
        decided.decision
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
        let decided = self.engine.decide(&input, &self.ledger, &NoApprovals);
        decided.usage.commit(&self.ledger);
        decided.decision
    }

    /// Lookup by id, then decide: the P3 unit of work for the caller.
    pub(crate) fn lookup_decide(
        &self,
        map: &HashMap<AgentId, CompiledAgent>,
        id: &AgentId,
    ) -> Decision {
        let agent = map.get(id).unwrap();
        self.decide_for(agent, self.allow_name, &self.allow_args)
    }

    /// Lookup by id, then decide, for a fleet member (varied callers).
    pub(crate) fn lookup_decide_member(
        &self,
        map: &HashMap<AgentId, CompiledAgent>,
        (id, i): &(AgentId, usize),
    ) -> Decision {
        let agent = map.get(id).unwrap();
        self.decide_member(agent, *i)
    }

    pub(crate) fn check(&self) {
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
