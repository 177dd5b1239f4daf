//! The OpenAPI 3.1 document of the API, generated from the handlers'
//! `#[utoipa::path]` annotations and the request and response types'
//! `ToSchema` derives; served at `GET /openapi.json` without authentication.
//!
//! Besides the document this module holds the reusable error responses (all
//! `application/problem+json` with the [`Problem`] schema) and schema-only
//! twins of the response types that live in `bridle-core` and `bridle-store`
//! (which do not depend on utoipa): `Role`, `AgentState`, `Effect`, `Reason`,
//! `Approval`, `AuditEvent`, `Verification` and their parts. Each twin is
//! checked against its real type at compile time (exhaustive matches and
//! destructuring below), so a new variant or field there fails the build
//! here; the schemathesis run (`scripts/schemathesis.sh`) checks the JSON.

use std::sync::LazyLock;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, HeaderBuilder, Ref, RefOr, ResponseBuilder, response::Response};
use utoipa::{Modify, OpenApi, PartialSchema, ToResponse, ToSchema};

use crate::error::{FieldError, Problem};
use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bridle API",
        description = "Identity, authorization and audit for AI agents: the agent registry, \
            OAuth 2.0 for agents, decisions, approvals, elevation, lifecycle, audit and findings. \
            Every error is `application/problem+json` (RFC 9457), except the OAuth endpoints, \
            which answer in the OAuth error format (RFC 6749 §5.2)."
    ),
    paths(
        routes::health,
        serve,
        routes::oauth::metadata,
        routes::oauth::jwks,
        routes::oauth::grants::token,
        routes::oauth::introspect::introspect,
        routes::oauth::introspect::revoke,
        routes::keys::list,
        routes::keys::rotate,
        routes::principals::create,
        routes::principals::deactivate,
        routes::agents::list,
        routes::agents::apply,
        routes::agents::show,
        routes::agents::suspend,
        routes::agents::resume,
        routes::agents::retire,
        routes::agents::review,
        routes::credentials::create,
        routes::credentials::list,
        routes::credentials::rotate,
        routes::credentials::revoke,
        routes::elevations::request,
        routes::decisions::decide,
        routes::decisions::outcome,
        routes::reachable::reachable,
        routes::ext_authz::check,
        routes::approvals::list,
        routes::approvals::show,
        routes::approval_wait::wait,
        routes::approvals::approve,
        routes::approvals::deny,
        routes::audit::list,
        routes::audit::verify,
        routes::audit::checkpoints,
        routes::findings::list,
    ),
    components(
        schemas(Problem, FieldError),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            Invalid,
            Unavailable,
            TooManyRequests
        )
    ),
    modifiers(&SecuritySchemes, &Throttled),
    security(("bearer" = [])),
    tags(
        (name = "health", description = "Liveness and the API description"),
        (name = "oauth", description = "OAuth 2.0 for agents (RFC 6749, 7009, 7517, 7523, 7662, 8414, 8693, 8707, 9068, 9449) and the signing keys"),
        (name = "principals", description = "Humans and service principals"),
        (name = "agents", description = "The agent registry and lifecycle"),
        (name = "elevations", description = "Just-in-time extra scope"),
        (name = "decisions", description = "The control point"),
        (name = "approvals", description = "Human approval of actions and elevations"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "findings", description = "Posture findings"),
    )
)]
struct ApiDoc;

/// The OpenAPI document of every route of [`routes::router`], as utoipa
/// builds it. Serve [`document_json`]: it fixes what utoipa gets wrong.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The OpenAPI document as served at `/openapi.json`.
pub fn document_json() -> Result<serde_json::Value, serde_json::Error> {
    let mut doc = serde_json::to_value(document())?;
    // One handler serves every method of `/ext_authz/…`; operation ids must
    // still be unique.
    if let Some(item) = doc
        .pointer_mut("/paths/~1ext_authz~1{path}")
        .and_then(|i| i.as_object_mut())
    {
        for (method, op) in item.iter_mut() {
            if let Some(op) = op.as_object_mut() {
                op.insert("operationId".into(), format!("ext_authz_{method}").into());
            }
        }
    }
    let operations = doc
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.as_object_mut());
    for operation in operations {
        // utoipa renders an optional body (`request_body = Option<T>`) as
        // `oneOf: [null, T]`, i.e. "T or JSON null"; it means "T, or no body".
        if let Some(body) = operation.get_mut("requestBody")
            && body.get("required") != Some(&serde_json::Value::Bool(true))
        {
            let media = body
                .get_mut("content")
                .and_then(|c| c.as_object_mut())
                .into_iter()
                .flat_map(|c| c.values_mut());
            for media in media {
                let Some(one_of) = media.pointer("/schema/oneOf").and_then(|o| o.as_array()) else {
                    continue;
                };
                let null = serde_json::json!({ "type": "null" });
                if let [a, b] = one_of.as_slice()
                    && (*a == null || *b == null)
                {
                    media["schema"] = if *a == null { b.clone() } else { a.clone() };
                }
            }
        }
        let Some(responses) = operation.get_mut("responses") else {
            continue;
        };
        fix_links(responses);
    }
    Ok(doc)
}

/// utoipa 5 serializes Link objects with snake_case keys (`operation_id`);
/// OpenAPI spells them in camelCase.
fn fix_links(responses: &mut serde_json::Value) {
    let responses = responses
        .as_object_mut()
        .into_iter()
        .flat_map(|r| r.values_mut());
    for response in responses {
        let links = response.get_mut("links").and_then(|l| l.as_object_mut());
        for link in links.into_iter().flat_map(|l| l.values_mut()) {
            let Some(link) = link.as_object_mut() else {
                continue;
            };
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(v) = link.remove(snake) {
                    link.insert(camel.to_owned(), v);
                }
            }
        }
    }
}

/// The document, serialized once.
static DOCUMENT: LazyLock<Result<String, serde_json::Error>> =
    LazyLock::new(|| document_json().and_then(|doc| serde_json::to_string(&doc)));

/// This OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    operation_id = "openapi",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API", body = Object, content_type = "application/json"),
    ),
)]
pub async fn serve() -> HttpResponse {
    match DOCUMENT.as_ref() {
        Ok(json) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json.clone(),
        )
            .into_response(),
        Err(e) => {
            crate::error::ApiError::Internal(format!("openapi document: {e}")).into_response()
        }
    }
}

/// The example of `PUT /v1/agents/{id}`: a reference manifest.
pub(crate) fn manifest_example() -> serde_json::Value {
    bridle_core::Manifest::from_source(include_str!("../../../examples/procurement-bot.yaml"))
        .map(|m| m.document)
        .unwrap_or_default()
}

/// Adds the security schemes the operations refer to.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "A principal's API key (`bk_…`), or an agent's access token (a JWT from `/oauth/token`)"
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description = Some(
            "OAuth `client_secret_basic`: the agent credential's client_id and client_secret \
             (form-urlencoded, RFC 6749 §2.3.1)"
                .into(),
        );
        components.add_security_scheme("client_secret_basic", SecurityScheme::Http(basic));
    }
}

/// Every operation that authenticates (documents a 401) may also answer 429
/// while the caller's credential or source is locked ([`crate::throttle`]);
/// the OAuth endpoints in the OAuth error format.
struct Throttled;

impl Modify for Throttled {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let retry_after = || {
            HeaderBuilder::new()
                .schema(u64::schema())
                .description(Some("Seconds until the lock ends"))
                .build()
        };
        for (path, item) in &mut openapi.paths.paths {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for op in ops.into_iter().flatten() {
                if !op.responses.responses.contains_key("401") {
                    continue;
                }
                let response: RefOr<Response> = if path.starts_with("/oauth/") {
                    ResponseBuilder::new()
                        .description(
                            "`temporarily_unavailable`: too many failed client authentications from this source",
                        )
                        .content(
                            "application/json",
                            Content::new(Some(Ref::from_schema_name("OAuthErrorBody"))),
                        )
                        .header("Retry-After", retry_after())
                        .build()
                        .into()
                } else {
                    Ref::from_response_name("TooManyRequests").into()
                };
                op.responses.responses.insert("429".into(), response);
            }
        }
    }
}

/// 429 says when to come back.
#[derive(Debug)]
pub(crate) struct TooManyRequests;

impl<'r> ToResponse<'r> for TooManyRequests {
    fn response() -> (&'r str, RefOr<Response>) {
        let response = problem(
            "Too many failed authentications from this source, or with this credential from it",
        )
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(u64::schema())
                .description(Some("Seconds until the lock ends"))
                .build(),
        );
        ("TooManyRequests", response.build().into())
    }
}

fn problem(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/problem+json",
        Content::new(Some(Ref::from_schema_name("Problem"))),
    )
}

macro_rules! problem_responses {
    ($($name:ident => $description:literal;)*) => {$(
        #[doc = $description]
        #[derive(Debug)]
        pub(crate) struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), problem($description).build().into())
            }
        }
    )*};
}

problem_responses! {
    BadRequest => "Bad request: a malformed body or query (a duplicate JSON key or an integer no 64-bit type holds, each named in `errors`), a resource outside the resource grammar, or an inconsistent request";
    Forbidden => "The caller is authenticated but may not do this";
    NotFound => "No such resource";
    Conflict => "The resource exists already, or its state does not allow this";
    PayloadTooLarge => "The request body is larger than the configured limit";
    Invalid => "Validation failed; `errors` says where and why";
    Unavailable => "The store or the audit log cannot be written; nothing was done (fail closed)";
}

/// 401 also says how to authenticate.
#[derive(Debug)]
pub(crate) struct Unauthorized;

impl<'r> ToResponse<'r> for Unauthorized {
    fn response() -> (&'r str, RefOr<Response>) {
        let response = problem(
            "Missing, malformed, expired, revoked or forged credentials (API key or access token)",
        )
        .header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(String::schema())
                .description(Some("`Bearer`"))
                .build(),
        );
        ("Unauthorized", response.build().into())
    }
}

/// A principal's role (`roles` of `POST /v1/principals`).
#[derive(ToSchema)]
#[schema(as = Role, rename_all = "lowercase")]
pub(crate) enum RoleSchema {
    Admin,
    Auditor,
    Pep,
}

/// An agent's lifecycle state.
#[derive(ToSchema)]
#[schema(as = AgentState, rename_all = "lowercase")]
pub(crate) enum AgentStateSchema {
    Active,
    Suspended,
    Retired,
}

/// A derived flag of an agent record.
#[derive(ToSchema)]
#[schema(as = AgentFlag, rename_all = "snake_case")]
#[expect(
    dead_code,
    reason = "a schema only; `routes::agents::record` sets the flags"
)]
pub(crate) enum AgentFlagSchema {
    Expired,
    ReviewOverdue,
    Orphaned,
}

/// What a decision says.
#[derive(ToSchema)]
#[schema(as = Effect, rename_all = "snake_case")]
pub(crate) enum EffectSchema {
    Allow,
    Deny,
    ApprovalRequired,
}

// The schema-only enums above must list every variant of the real types: these
// matches stop compiling when a variant is added there.
const _: fn(bridle_store::Role) -> RoleSchema = |r| match r {
    bridle_store::Role::Admin => RoleSchema::Admin,
    bridle_store::Role::Auditor => RoleSchema::Auditor,
    bridle_store::Role::Pep => RoleSchema::Pep,
};
const _: fn(bridle_core::engine::AgentState) -> AgentStateSchema = |s| match s {
    bridle_core::engine::AgentState::Active => AgentStateSchema::Active,
    bridle_core::engine::AgentState::Suspended => AgentStateSchema::Suspended,
    bridle_core::engine::AgentState::Retired => AgentStateSchema::Retired,
};
const _: fn(bridle_core::decision::Effect) -> EffectSchema = |e| match e {
    bridle_core::decision::Effect::Allow => EffectSchema::Allow,
    bridle_core::decision::Effect::Deny => EffectSchema::Deny,
    bridle_core::decision::Effect::ApprovalRequired => EffectSchema::ApprovalRequired,
};

/// Why a decision came out as it did.
#[derive(ToSchema)]
#[schema(as = Reason)]
#[expect(
    dead_code,
    reason = "a schema only; `bridle_core::decision::Reason` is the type"
)]
pub(crate) struct ReasonSchema {
    code: ReasonCodeSchema,
    message: String,
    /// The manifest element that decided.
    source: Option<SourceRefSchema>,
}

/// The manifest element that decided: its path and line.
#[derive(ToSchema)]
#[schema(as = SourceRef)]
#[expect(
    dead_code,
    reason = "a schema only; `bridle_core::decision::SourceRef` is the type"
)]
pub(crate) struct SourceRefSchema {
    /// The agent whose record it is (differs from the caller in delegation).
    agent: String,
    /// Path in the manifest (`tools[1].args.amount.max`), or a guardrail name.
    path: String,
    line: Option<usize>,
}

/// A stable reason code.
#[derive(ToSchema)]
#[schema(as = ReasonCode, rename_all = "snake_case")]
pub(crate) enum ReasonCodeSchema {
    Granted,
    Approved,
    NotGranted,
    Forbidden,
    ArgConstraint,
    DataScope,
    OutsideSchedule,
    AgentSuspended,
    AgentExpired,
    RateLimited,
    BudgetExceeded,
    ApprovalRequired,
    ApprovalDenied,
    DelegationScope,
    Elevated,
}

/// What the caller must do along with an allowed action.
#[derive(ToSchema)]
#[schema(as = Obligation, rename_all = "snake_case")]
pub(crate) enum ObligationSchema {
    LogRetrieval,
}

const _: fn(bridle_core::decision::Reason) -> ReasonSchema = |r| {
    let bridle_core::decision::Reason {
        code,
        message,
        source,
    } = r;
    ReasonSchema {
        code: reason_code(code),
        message,
        source: source.map(|s| {
            let bridle_core::decision::SourceRef { agent, path, line } = s;
            SourceRefSchema { agent, path, line }
        }),
    }
};
fn reason_code(c: bridle_core::decision::ReasonCode) -> ReasonCodeSchema {
    use bridle_core::decision::ReasonCode as C;
    match c {
        C::Granted => ReasonCodeSchema::Granted,
        C::Approved => ReasonCodeSchema::Approved,
        C::NotGranted => ReasonCodeSchema::NotGranted,
        C::Forbidden => ReasonCodeSchema::Forbidden,
        C::ArgConstraint => ReasonCodeSchema::ArgConstraint,
        C::DataScope => ReasonCodeSchema::DataScope,
        C::OutsideSchedule => ReasonCodeSchema::OutsideSchedule,
        C::AgentSuspended => ReasonCodeSchema::AgentSuspended,
        C::AgentExpired => ReasonCodeSchema::AgentExpired,
        C::RateLimited => ReasonCodeSchema::RateLimited,
        C::BudgetExceeded => ReasonCodeSchema::BudgetExceeded,
        C::ApprovalRequired => ReasonCodeSchema::ApprovalRequired,
        C::ApprovalDenied => ReasonCodeSchema::ApprovalDenied,
        C::DelegationScope => ReasonCodeSchema::DelegationScope,
        C::Elevated => ReasonCodeSchema::Elevated,
    }
}
const _: fn(bridle_core::decision::Obligation) -> ObligationSchema = |o| match o {
    bridle_core::decision::Obligation::LogRetrieval => ObligationSchema::LogRetrieval,
};

/// A request for human approval of an action or an elevation.
#[derive(ToSchema)]
#[schema(as = Approval)]
#[expect(
    dead_code,
    reason = "a schema only; `bridle_store::Approval` is the type"
)]
pub(crate) struct ApprovalSchema {
    #[schema(example = "apr_3kq9Zt0bW1xe")]
    id: String,
    kind: ApprovalKindSchema,
    agent: String,
    /// The tool name, or `elevation:NAME`.
    action: String,
    /// The arguments of the action (sensitive ones redacted).
    #[schema(value_type = Object)]
    args: serde_json::Value,
    #[schema(required = true)]
    resource: Option<String>,
    state: ApprovalStateSchema,
    /// `group:NAME` or a principal id.
    approvers: Vec<String>,
    min_approvals: i64,
    /// Whether the agent's owner may approve.
    allow_owner: bool,
    /// The elevation it grants (`kind: elevation`).
    elevation_id: Option<String>,
    votes: Vec<VoteSchema>,
    created_at: String,
    expires_at: String,
}

/// One approver's vote.
#[derive(ToSchema)]
#[schema(as = Vote)]
#[expect(dead_code, reason = "a schema only; `bridle_store::Vote` is the type")]
pub(crate) struct VoteSchema {
    principal: String,
    /// `approve` or `deny`.
    vote: String,
    comment: Option<String>,
    at: String,
}

#[derive(ToSchema)]
#[schema(as = ApprovalKind, rename_all = "lowercase")]
pub(crate) enum ApprovalKindSchema {
    Action,
    Elevation,
}

#[derive(ToSchema)]
#[schema(as = ApprovalState, rename_all = "lowercase")]
pub(crate) enum ApprovalStateSchema {
    Pending,
    Approved,
    Denied,
    Expired,
    Consumed,
    Cancelled,
}

const _: fn(bridle_store::Approval) -> ApprovalSchema = |a| {
    // Every field: `key` and `owner` are not serialized.
    let bridle_store::Approval {
        id,
        kind,
        agent,
        key: _,
        action,
        args,
        resource,
        state,
        approvers,
        min_approvals,
        allow_owner,
        owner: _,
        elevation_id,
        votes,
        created_at,
        expires_at,
    } = a;
    ApprovalSchema {
        id,
        kind: match kind {
            bridle_store::ApprovalKind::Action => ApprovalKindSchema::Action,
            bridle_store::ApprovalKind::Elevation => ApprovalKindSchema::Elevation,
        },
        agent,
        action,
        args,
        resource,
        state: match state {
            bridle_store::ApprovalState::Pending => ApprovalStateSchema::Pending,
            bridle_store::ApprovalState::Approved => ApprovalStateSchema::Approved,
            bridle_store::ApprovalState::Denied => ApprovalStateSchema::Denied,
            bridle_store::ApprovalState::Expired => ApprovalStateSchema::Expired,
            bridle_store::ApprovalState::Consumed => ApprovalStateSchema::Consumed,
            bridle_store::ApprovalState::Cancelled => ApprovalStateSchema::Cancelled,
        },
        approvers,
        min_approvals,
        allow_owner,
        elevation_id,
        votes: votes
            .into_iter()
            .map(|v| {
                let bridle_store::Vote {
                    principal,
                    vote,
                    comment,
                    at,
                } = v;
                VoteSchema {
                    principal,
                    vote,
                    comment,
                    at,
                }
            })
            .collect(),
        created_at,
        expires_at,
    }
};

/// An event of the hash-chained audit log.
#[derive(ToSchema)]
#[schema(as = AuditEvent)]
#[expect(
    dead_code,
    reason = "a schema only; `bridle_core::audit::AuditEvent` is the type"
)]
pub(crate) struct AuditEventSchema {
    seq: u64,
    /// RFC 3339.
    time: String,
    #[schema(rename = "type")]
    kind: EventTypeSchema,
    /// Who acted: `principal:alice`, `agent:swe-bot`, `system`.
    actor: String,
    agent: Option<String>,
    action: Option<String>,
    decision: Option<EffectSchema>,
    reasons: Option<Vec<ReasonSchema>>,
    #[schema(value_type = Option<Object>)]
    args: Option<serde_json::Value>,
    resource: Option<String>,
    retrievals: Option<Vec<String>>,
    /// Anything else the event type carries (ids, states, comments).
    #[schema(value_type = Option<Object>)]
    detail: Option<serde_json::Value>,
    prev_hash: String,
    hash: String,
}

#[derive(ToSchema)]
#[schema(as = EventType, rename_all = "snake_case")]
pub(crate) enum EventTypeSchema {
    Decision,
    Outcome,
    Approval,
    Elevation,
    Credential,
    Token,
    Lifecycle,
    Manifest,
    Principal,
    Authentication,
}

/// The result of checking the whole chain against the stored head and every
/// signed checkpoint.
#[derive(ToSchema)]
#[schema(as = Verification)]
#[expect(
    dead_code,
    reason = "a schema only; `bridle_core::audit::Verification` is the type"
)]
pub(crate) struct VerificationSchema {
    ok: bool,
    /// How many events were checked.
    events: u64,
    /// Hash of the last event of the intact prefix (the genesis value for an
    /// empty log).
    head: String,
    /// The first event that does not verify, when `ok` is false.
    first_bad_seq: Option<u64>,
    /// Every `seq` reported, ascending (empty when `ok`).
    broken: Vec<u64>,
    /// What is wrong at each reported `seq`.
    problems: Vec<ProblemSchema>,
    /// The latest signed checkpoint the chain was checked against.
    checkpoint_seq: Option<u64>,
}

/// One finding of a verification.
#[derive(ToSchema)]
#[schema(as = VerificationProblem)]
#[expect(
    dead_code,
    reason = "a schema only; `bridle_core::audit::Problem` is the type"
)]
pub(crate) struct ProblemSchema {
    seq: u64,
    kind: ProblemKindSchema,
}

/// `altered` (content does not match its hash), `unlinked` (`prev_hash` is
/// not the previous record's hash), `missing` (deleted), `out_of_order`,
/// `downgraded` (an old-format record after a new one), `checkpoint_mismatch`
/// (hash differs from a signed checkpoint), `head_mismatch` (differs from the
/// stored head), `truncated` (the log ends before a checkpoint or the head),
/// `bad_checkpoint` (its signature or fields do not verify).
#[derive(ToSchema)]
#[schema(as = VerificationProblemKind, rename_all = "snake_case")]
pub(crate) enum ProblemKindSchema {
    Altered,
    Unlinked,
    Missing,
    OutOfOrder,
    Downgraded,
    CheckpointMismatch,
    HeadMismatch,
    Truncated,
    BadCheckpoint,
}

/// A signed checkpoint of the audit chain.
#[derive(ToSchema)]
#[schema(as = AuditCheckpoint)]
#[expect(
    dead_code,
    reason = "a schema only; `bridle_core::audit::SignedCheckpoint` is the type"
)]
pub(crate) struct CheckpointSchema {
    /// The event whose hash is `head`.
    seq: u64,
    head: String,
    /// RFC 3339: when it was signed.
    time: String,
    /// Compact JWS (EdDSA, `typ: bridle-checkpoint+jwt`, `kid`) whose payload
    /// is `{seq, head, time}`.
    jws: String,
}

const _: fn(bridle_core::audit::SignedCheckpoint) -> CheckpointSchema = |c| {
    let bridle_core::audit::SignedCheckpoint {
        seq,
        head,
        time,
        jws,
    } = c;
    CheckpointSchema {
        seq,
        head,
        time: time.to_string(),
        jws,
    }
};
const _: fn(bridle_core::audit::Problem) -> ProblemSchema = |p| {
    let bridle_core::audit::Problem { seq, kind } = p;
    use bridle_core::audit::ProblemKind as K;
    let kind = match kind {
        K::Altered => ProblemKindSchema::Altered,
        K::Unlinked => ProblemKindSchema::Unlinked,
        K::Missing => ProblemKindSchema::Missing,
        K::OutOfOrder => ProblemKindSchema::OutOfOrder,
        K::Downgraded => ProblemKindSchema::Downgraded,
        K::CheckpointMismatch => ProblemKindSchema::CheckpointMismatch,
        K::HeadMismatch => ProblemKindSchema::HeadMismatch,
        K::Truncated => ProblemKindSchema::Truncated,
        K::BadCheckpoint => ProblemKindSchema::BadCheckpoint,
    };
    ProblemSchema { seq, kind }
};

const _: fn(bridle_core::audit::AuditEvent) -> u64 = |e| {
    let bridle_core::audit::AuditEvent {
        seq,
        body,
        prev_hash: _,
        hash: _,
    } = e;
    let bridle_core::audit::EventBody {
        time: _,
        kind,
        actor: _,
        agent: _,
        action: _,
        decision: _,
        reasons: _,
        args: _,
        resource: _,
        retrievals: _,
        detail: _,
    } = body;
    let _: EventTypeSchema = match kind {
        bridle_core::audit::EventType::Decision => EventTypeSchema::Decision,
        bridle_core::audit::EventType::Outcome => EventTypeSchema::Outcome,
        bridle_core::audit::EventType::Approval => EventTypeSchema::Approval,
        bridle_core::audit::EventType::Elevation => EventTypeSchema::Elevation,
        bridle_core::audit::EventType::Credential => EventTypeSchema::Credential,
        bridle_core::audit::EventType::Token => EventTypeSchema::Token,
        bridle_core::audit::EventType::Lifecycle => EventTypeSchema::Lifecycle,
        bridle_core::audit::EventType::Manifest => EventTypeSchema::Manifest,
        bridle_core::audit::EventType::Principal => EventTypeSchema::Principal,
        bridle_core::audit::EventType::Authentication => EventTypeSchema::Authentication,
    };
    seq
};
const _: fn(bridle_core::audit::Verification) -> VerificationSchema = |v| {
    let bridle_core::audit::Verification {
        ok,
        events,
        head,
        first_bad_seq,
        broken,
        problems: _,
        checkpoint_seq,
    } = v;
    VerificationSchema {
        ok,
        events,
        head,
        first_bad_seq,
        broken,
        problems: Vec::new(),
        checkpoint_seq,
    }
};
