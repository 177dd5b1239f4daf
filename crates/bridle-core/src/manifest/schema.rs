//! The manifest's JSON Schema (`docs/manifest-v1.schema.json`, served at
//! `/schemas/manifest-v1.json`), generated from the input-shape types
//! below. The parser walks a positioned node tree rather than
//! deserializing, so these types describe the format as written and exist
//! only to derive the schema; the tests keep them honest (every example
//! validates, the committed file is the generated one). The schema checks
//! shape (keys, types, enumerations, simple patterns); meaning (Cedar
//! conditions, regexes, time zones, overlapping grants) is the loader's.
#![expect(
    dead_code,
    reason = "input-shape types exist only to derive the JSON Schema"
)]

use std::collections::BTreeMap;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;

const AGENT_ID: &str = r"^[a-z0-9][a-z0-9-]{0,62}$";
const PRINCIPAL_ID: &str = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$";
const APPROVER: &str = r"^(group:)?[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$";
const TOOL_GLOB: &str = r"^[A-Za-z0-9_.:/*-]{1,512}$";
const DATE: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$";
const DURATION: &str = r"^\s*([0-9]+\s*(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?)\s*,?\s*)+$|^P[0-9A-Za-z.]+$";
const RATE: &str = r"^\s*[0-9]+\s*/\s*([0-9]*\s*(s|sec|secs?|seconds?|m|min|mins?|minutes?|h|hrs?|hours?|d|days?)\s*)+$";
const WINDOW: &str = r"^\s*\S+\s+[0-9]{1,2}:[0-9]{2}\s*-\s*[0-9]{1,2}:[0-9]{2}\s*$";

/// A Bridle agent manifest, format v1: the whole governance record of one
/// agent. Unknown keys are errors.
#[derive(JsonSchema)]
#[schemars(title = "Bridle agent manifest, format v1", deny_unknown_fields)]
struct ManifestV1 {
    /// The agent's id; never reused, even after retirement.
    #[schemars(regex(pattern = AGENT_ID))]
    agent: String,
    /// Display name.
    name: Option<String>,
    /// Id of the accountable human principal; must exist and be active.
    #[schemars(regex(pattern = PRINCIPAL_ID))]
    owner: String,
    /// Owning team.
    team: Option<String>,
    /// One sentence: why this agent exists.
    #[schemars(length(min = 1))]
    purpose: String,
    environment: Environment,
    /// Date (`YYYY-MM-DD`) after which every action is denied (`agent_expired`).
    #[schemars(regex(pattern = DATE))]
    expires: String,
    /// Duration (`90d`); when the last review is older, the agent is `review_overdue`.
    #[schemars(regex(pattern = DURATION))]
    review_every: Option<String>,
    /// Tool grants. A tool matched by several is governed by the most
    /// specific one alone: a literal name beats any glob; between globs the
    /// longer literal prefix wins; equally specific grants matching one name
    /// are an error.
    tools: Option<Vec<ToolGrant>>,
    /// Tool-name globs that are never allowed, not even by elevation.
    forbid: Option<Vec<ToolGlob>>,
    /// Data grants: which resources the agent's tools may touch, and how.
    data: Option<Vec<DataGrant>>,
    schedule: Option<Schedule>,
    limits: Option<Limits>,
    delegation: Option<Delegation>,
    /// Extra tools for a bounded time, on approval or when `auto_grant_when` holds.
    elevation: Option<Vec<Elevation>>,
    monitoring: Option<Monitoring>,
    credentials: Option<Credentials>,
}

/// The agent's environment (`staging` and `prod` are under change control
/// by default).
#[derive(JsonSchema)]
#[schemars(rename_all = "lowercase")]
enum Environment {
    Dev,
    Staging,
    Prod,
}

/// An access level.
#[derive(JsonSchema)]
#[schemars(rename_all = "lowercase")]
enum Access {
    Read,
    Write,
    Export,
    Admin,
}

/// A tool name or glob (`*` matches any run of characters, dots included).
#[derive(JsonSchema)]
#[schemars(transparent)]
struct ToolGlob(#[schemars(regex(pattern = TOOL_GLOB))] String);

/// `group:NAME` or a principal id.
#[derive(JsonSchema)]
#[schemars(transparent)]
struct Approver(#[schemars(regex(pattern = APPROVER))] String);

/// A duration: `30s`, `15m`, `1h`, `7d`.
#[derive(JsonSchema)]
#[schemars(transparent)]
struct Duration(#[schemars(regex(pattern = DURATION))] String);

/// A rate `COUNT/WINDOW`: `60/min`, `10/10m`.
#[derive(JsonSchema)]
#[schemars(transparent)]
struct Rate(#[schemars(regex(pattern = RATE))] String);

/// One tool grant.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct ToolGrant {
    name: ToolGlob,
    /// Default `read`. When a request names a `resource`, a data grant must
    /// cover it with this access (`data_scope` otherwise).
    access: Option<Access>,
    /// Per-argument constraints; a missing constrained argument fails
    /// (`arg_constraint`).
    args: Option<BTreeMap<String, ArgConstraint>>,
    /// A Cedar expression over `context` that must hold. An argument it
    /// reads without a constraint gets its type from the expression; if
    /// missing or of another type, `when` fails.
    when: Option<String>,
    approval: Option<Approval>,
    /// Argument names whose values the audit log keeps only as keyed HMACs.
    sensitive: Option<Vec<String>>,
}

/// Constraints on one argument (at least one).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, extend("minProperties" = 1))]
struct ArgConstraint {
    /// The value must be one of these.
    #[schemars(length(min = 1))]
    r#in: Option<Vec<Literal>>,
    /// The value must be none of these.
    #[schemars(length(min = 1))]
    not_in: Option<Vec<Literal>>,
    /// Integer lower bound (amounts are integers in minor units).
    min: Option<i64>,
    /// Integer upper bound (amounts are integers in minor units).
    max: Option<i64>,
    /// A regular expression the whole value must match.
    pattern: Option<String>,
    /// The value must start with this.
    prefix: Option<String>,
}

/// A string, integer or boolean literal.
#[derive(JsonSchema)]
#[schemars(untagged)]
enum Literal {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// Human approval: when the Cedar expression `when` holds (or always, if
/// absent), the action needs approval. An argument it reads without a
/// constraint gets its type from the expression; if missing or of another
/// type, approval is required.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Approval {
    when: Option<String>,
    #[schemars(flatten)]
    rule: BudgetApproval,
}

/// One data grant.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct DataGrant {
    /// A resource glob such as `crm:cases/*`.
    #[schemars(length(min = 1, max = 512))]
    resource: String,
    #[schemars(length(min = 1))]
    access: Vec<Access>,
}

/// When the agent may act, in its own time zone.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Schedule {
    /// An IANA time zone, e.g. `Europe/Paris`.
    #[schemars(length(min = 1))]
    timezone: String,
    /// `DAYS HH:MM-HH:MM`: DAYS is `Mon` … `Sun`, a range `Mon-Fri`, a list
    /// `Mon,Wed,Fri` or `daily`; an end before the start runs past midnight.
    #[schemars(length(min = 1), inner(regex(pattern = WINDOW)))]
    windows: Vec<String>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Limits {
    /// Over it: `rate_limited`.
    rate: Option<Rate>,
    budgets: Option<Vec<Budget>>,
}

/// The sum of integer argument `arg` over allowed actions in a rolling
/// `per` window may not exceed `max` (`budget_exceeded`). A request that
/// carries `arg` must send a non-negative integer.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Budget {
    #[schemars(length(min = 1))]
    arg: String,
    #[schemars(range(min = 0))]
    max: i64,
    per: Duration,
    /// Over `max`, ask for approval instead of denying: an action that
    /// would take the window's sum past `max` is `approval_required`, and
    /// once approved spends past it.
    approval: Option<BudgetApproval>,
}

/// A budget's approval rule: a grant's `approval` without `when`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct BudgetApproval {
    #[schemars(length(min = 1))]
    approvers: Vec<Approver>,
    /// Default 1.
    #[schemars(range(min = 1, max = 100))]
    min_approvals: Option<u32>,
    /// How long a granted approval stays usable; default `24h`, at most `30d`.
    ttl: Option<Duration>,
    /// Whether the agent's owner may approve; default false.
    allow_owner: Option<bool>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Delegation {
    /// Agent ids this agent may delegate to (RFC 8693 token exchange).
    to: Option<Vec<AgentRef>>,
    /// Default 1.
    #[schemars(range(min = 1, max = 5))]
    max_depth: Option<u32>,
}

/// An agent id.
#[derive(JsonSchema)]
#[schemars(transparent)]
struct AgentRef(#[schemars(regex(pattern = AGENT_ID))] String);

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Elevation {
    #[schemars(regex(pattern = AGENT_ID))]
    name: String,
    #[schemars(length(min = 1))]
    tools: Vec<ToolGlob>,
    max_duration: Duration,
    #[schemars(length(min = 1))]
    approvers: Vec<Approver>,
    /// A Cedar expression over `context.reason`, `context.duration_seconds`,
    /// `context.elevation` and `context.time` that grants without a human.
    auto_grant_when: Option<String>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Monitoring {
    /// Adds the `log_retrieval` obligation to every decision.
    log_retrievals: Option<bool>,
    /// Suspends the agent automatically, e.g. `10/10m`.
    suspend_after_denials: Option<Rate>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Credentials {
    /// Default `15m`, at most `1h`.
    token_ttl: Option<Duration>,
    /// `required` binds every token to the agent's key (RFC 9449).
    dpop: Option<Dpop>,
}

#[derive(JsonSchema)]
#[schemars(rename_all = "lowercase")]
enum Dpop {
    Required,
    Optional,
}

/// The JSON Schema (draft 2020-12) of manifest format v1.
pub fn json_schema() -> serde_json::Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<ManifestV1>().to_value();
    drop_null(&mut schema);
    sorted(schema)
}

/// The same value with every object's keys in sorted order, so the text is
/// the same whether or not a build enables serde_json's `preserve_order`.
fn sorted(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// An optional key is absent, never `null` (the loader refuses a null
/// where a value is expected): drop the `null` alternative schemars gives
/// every `Option`.
fn drop_null(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if let [only] = types.as_slice() {
                    let only = only.clone();
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any)) = map.get_mut("anyOf") {
                any.retain(|s| s.get("type").is_none_or(|t| t != "null"));
                if let [only] = any.as_slice()
                    && let Value::Object(inner) = only.clone()
                {
                    map.remove("anyOf");
                    for (k, val) in inner {
                        map.entry(k).or_insert(val);
                    }
                }
            }
            for child in map.values_mut() {
                drop_null(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

/// The schema as committed under `docs/` and served: pretty JSON and a
/// final newline.
pub fn json_schema_text() -> String {
    let mut text =
        serde_json::to_string_pretty(&json_schema()).unwrap_or_else(|_| String::from("{}"));
    text.push('\n');
    text
}
