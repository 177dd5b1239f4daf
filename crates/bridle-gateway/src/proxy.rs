//! The MCP side: one handler per session, shared upstreams. Every request
//! that does something is decided by Bridle first, with the agent's token
//! the HTTP layer accepted ([`crate::http`]).
//!
//! Action names: a tool `echo` of the upstream with prefix `everything.` is
//! `everything.echo`; its prompt `greet` is listed as `everything.greet` and
//! decided as `everything.prompt.greet`; reading any of its resources is
//! `everything.resources.read`, with the URI as the decision's `resource`.
//!
//! Lists and completions reveal names and values but act on nothing: they
//! are filtered by what the agent can reach at all (`reachable`), not
//! decided one by one, and are not audited as decisions.

use std::sync::Arc;

use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientRequest, CompleteRequestParams,
    CompleteResult, ErrorCode, GetPromptRequest, GetPromptRequestParams, GetPromptResponse,
    Implementation, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, Reference, ResultType, ServerCapabilities, ServerResult,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use tracing::Instrument as _;

use crate::bridle::{AgentToken, Bridle, BridleError, Decision};
use crate::held::{Held, abandoned, still_pending};
use crate::relay::{Session, Sessions};
use crate::telemetry::{self, Target};
use crate::upstream::{Listener, Upstream, Upstreams};

/// JSON-RPC error code of a call Bridle denied.
pub const DENIED: i32 = -32001;
/// JSON-RPC error code of a call whose approval did not come in time.
pub const APPROVAL_PENDING: i32 = -32003;
/// JSON-RPC error code of a held call the agent gave up on (never forwarded).
pub const ABANDONED: i32 = -32800;

/// How often a held call tells the agent it is still waiting (a progress
/// notification, when the request carried a progress token).
const KEEPALIVE: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Shared {
    pub bridle: Bridle,
    pub upstreams: Upstreams,
    pub approval_wait: Duration,
    /// Every agent session, for what is relayed to all of them.
    pub sessions: Arc<Sessions>,
}

/// One agent session's handler: the shared state, and the session's own
/// (its links to upstreams and where their traffic goes, [`crate::relay`]).
#[derive(Debug, Clone)]
pub struct Proxy(pub Arc<Shared>, pub(crate) Arc<Session>);

impl Proxy {
    /// The handler of a new session.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self(shared, Arc::new(Session::default()))
    }

    /// Forward `request`, for the agent request of `ctx`, on the session's
    /// connection to `upstream` (its link, connected now if need be).
    pub(crate) async fn forward(
        &self,
        upstream: &Upstream,
        ctx: &RequestContext<RoleServer>,
        request: ClientRequest,
        to: Option<Listener>,
    ) -> Result<ServerResult, McpError> {
        let conn = self.1.conn(upstream, ctx, &self.0.bridle).await?;
        upstream.forward(conn, request, to, ctx.id.clone()).await
    }

    /// The request's agent, which the session is bound to.
    pub(crate) fn agent(&self, ctx: &RequestContext<RoleServer>) -> Result<AgentToken, McpError> {
        let agent = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<AgentToken>())
            .cloned()
            .ok_or_else(|| {
                McpError::invalid_request("no authenticated agent on this request", None)
            })?;
        self.1.bind(ctx, &agent, &self.0.sessions)?;
        Ok(agent)
    }
}

pub(crate) fn bridle_error(e: BridleError) -> McpError {
    match e {
        BridleError::Unauthenticated(why) => McpError::new(
            ErrorCode(DENIED),
            format!("denied by Bridle (unauthenticated): {why}"),
            Some(json!({"reason": "unauthenticated"})),
        ),
        other => McpError::internal_error(
            format!("not forwarded: no decision from Bridle ({other})"),
            None,
        ),
    }
}

pub(crate) fn denied(d: &Decision) -> McpError {
    let (code, message) = d
        .reasons
        .first()
        .map_or(("not_granted", "denied"), |r| (&r.code, &r.message));
    McpError::new(
        ErrorCode(DENIED),
        format!("denied by Bridle ({code}): {message}"),
        Some(json!({
            "reason": code,
            "reasons": d.reasons.iter().map(|r| json!({"code": r.code, "message": r.message})).collect::<Vec<_>>(),
            "decision_id": d.decision_id,
        })),
    )
}

/// 2026-07-28 requires `resultType` on every result; an upstream on an
/// older revision leaves it out. rmcp strips it again for agents that
/// negotiated an older revision.
fn complete_call(mut r: CallToolResponse) -> CallToolResponse {
    if let CallToolResponse::Complete(c) = &mut r {
        c.result_type.get_or_insert(ResultType::COMPLETE);
    }
    r
}

fn complete_prompt(mut r: GetPromptResponse) -> GetPromptResponse {
    if let GetPromptResponse::Complete(c) = &mut r {
        c.result_type.get_or_insert(ResultType::COMPLETE);
    }
    r
}

pub(crate) fn complete_read(mut r: ReadResourceResponse) -> ReadResourceResponse {
    if let ReadResourceResponse::Complete(c) = &mut r {
        c.result_type.get_or_insert(ResultType::COMPLETE);
    }
    r
}

/// URL-like words (`scheme://…`) anywhere in the arguments that fit the
/// resource grammar: what a call retrieves from, for the audit log with the
/// outcome (which refuses anything else). Public only for the fuzz targets
/// (`fuzz/`).
#[doc(hidden)]
pub fn retrievals(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.extend(
            s.split_whitespace()
                .filter(|w| w.contains("://"))
                .filter_map(|w| bridle_core::resource::Resource::parse(w).ok())
                .map(bridle_core::resource::Resource::into_string),
        ),
        Value::Array(items) => items.iter().for_each(|v| retrievals(v, out)),
        Value::Object(map) => map.values().for_each(|v| retrievals(v, out)),
        _ => {}
    }
}

impl Proxy {
    /// Decide; hold an `approval_required` call until it is approved (woken
    /// by the server's long poll), then decide again, consuming it. A call
    /// the agent gave up on while held is never decided again, so its
    /// approval stays unused, and never forwarded.
    pub(crate) async fn decide(
        &self,
        agent: &AgentToken,
        action: &str,
        args: &Map<String, Value>,
        resource: Option<&str>,
        held: &Held,
    ) -> Result<Decision, McpError> {
        let bridle = &self.0.bridle;
        let d = bridle
            .decide(agent, action, args, resource)
            .await
            .map_err(bridle_error)?;
        match d.decision.as_str() {
            "allow" => return Ok(d),
            "approval_required" => {}
            _ => return Err(denied(&d)),
        }
        let Some(approval) = d.approval_id.clone() else {
            return Err(denied(&d));
        };
        let wait = self.0.approval_wait;
        let deadline = tokio::time::Instant::now() + wait;
        let mut round = 0;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(still_pending(&approval, wait));
            }
            let state = tokio::select! {
                biased;
                () = held.wait_gone() => return Err(abandoned(&approval)),
                s = bridle.wait_approval(&approval, left.min(KEEPALIVE)) => s.map_err(bridle_error)?,
            };
            if state != "pending" {
                break;
            }
            round += 1;
            held.still_waiting(&approval, round).await;
        }
        if held.gone() {
            return Err(abandoned(&approval));
        }
        let again = bridle
            .decide(agent, action, args, resource)
            .await
            .map_err(bridle_error)?;
        match again.decision.as_str() {
            "allow" => Ok(again),
            "approval_required" => Err(still_pending(
                again.approval_id.as_deref().unwrap_or(&approval),
                wait,
            )),
            _ => Err(denied(&again)),
        }
    }

    /// Report the outcome in the background: the answer does not wait for it.
    pub(crate) fn report(
        &self,
        agent: AgentToken,
        decision: &Decision,
        ok: bool,
        retrievals: Vec<String>,
    ) {
        let bridle = self.0.bridle.clone();
        let id = decision.decision_id.clone();
        // Still part of the call's trace, though the answer does not wait.
        let span = tracing::Span::current();
        tokio::spawn(
            async move {
                if let Err(e) = bridle.outcome(&agent, &id, ok, retrievals).await {
                    tracing::warn!(decision = %id, error = %e, "outcome not recorded");
                }
            }
            .instrument(span),
        );
    }

    pub(crate) async fn reachable(
        &self,
        agent: &AgentToken,
        actions: Vec<String>,
    ) -> Result<Vec<String>, McpError> {
        self.0
            .bridle
            .reachable(agent, actions)
            .await
            .map_err(bridle_error)
    }

    async fn list_tools_in(
        &self,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let agent = self.agent(ctx)?;
        let mut tools = Vec::new();
        for u in &self.0.upstreams.all {
            match u.call(|p| async move { p.list_all_tools().await }).await {
                Ok(list) => tools.extend(list.into_iter().map(|mut t| {
                    t.name = format!("{}{}", u.prefix, t.name).into();
                    t
                })),
                Err(e) => {
                    tracing::warn!(upstream = %u.name, error = %e.message, "tools/list failed")
                }
            }
        }
        let names = tools.iter().map(|t| t.name.to_string()).collect();
        let reach = self.reachable(&agent, names).await?;
        tools.retain(|t| reach.iter().any(|r| r == t.name.as_ref()));
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool_in(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let agent = self.agent(&ctx)?;
        let action = request.name.to_string();
        let (upstream, tool) = self.route(&action)?;
        let args = request.arguments.clone().unwrap_or_default();
        let held = Held::of(&ctx);
        let decision = self.decide(&agent, &action, &args, None, &held).await?;
        held.check()?;
        let mut forward = request;
        forward.name = tool.to_owned().into();
        let span = telemetry::mcp_client(
            "tools/call",
            Target::Tool(tool),
            &upstream.name,
            &mut forward.meta,
        );
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(forward));
        let result = held
            .unless_abandoned(
                self.forward(&upstream, &ctx, request, held.listener())
                    .instrument(span.clone()),
            )
            .await
            .and_then(|r| upstream.tool_response(r))
            .map(complete_call);
        let tool_error =
            matches!(&result, Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true));
        telemetry::ended(&span, &result, tool_error);
        let ok = matches!(&result, Ok(CallToolResponse::Complete(r)) if r.is_error != Some(true));
        let mut seen = Vec::new();
        retrievals(&Value::Object(args), &mut seen);
        self.report(agent, &decision, ok, seen);
        result
    }

    async fn get_prompt_in(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let agent = self.agent(&ctx)?;
        let name = request.name.clone();
        let (upstream, prompt) = self.route(&name)?;
        let action = format!("{}prompt.{prompt}", upstream.prefix);
        let args = request.arguments.clone().unwrap_or_default();
        let held = Held::of(&ctx);
        let decision = self.decide(&agent, &action, &args, None, &held).await?;
        held.check()?;
        let mut forward = request;
        forward.name = prompt.to_owned();
        let span = telemetry::mcp_client(
            "prompts/get",
            Target::Prompt(prompt),
            &upstream.name,
            &mut forward.meta,
        );
        let request = ClientRequest::GetPromptRequest(GetPromptRequest::new(forward));
        let result = self
            .forward(&upstream, &ctx, request, None)
            .instrument(span.clone())
            .await
            .and_then(|r| match r {
                ServerResult::GetPromptResult(r) => Ok(GetPromptResponse::Complete(r)),
                ServerResult::InputRequiredResult(r) => Ok(GetPromptResponse::InputRequired(r)),
                _ => Err(upstream.unexpected()),
            })
            .map(complete_prompt);
        telemetry::ended(&span, &result, false);
        self.report(agent, &decision, result.is_ok(), Vec::new());
        result
    }

    /// `completion/complete` for a prompt's or a resource template's
    /// argument: relayed to the upstream that has it when the agent can
    /// reach the prompt (`{prefix}prompt.{name}`) or the upstream's
    /// resources (`{prefix}resources.read`) at all; otherwise refused as
    /// not granted, so completion reveals no values of what the agent may
    /// not use.
    async fn completion_in(
        &self,
        mut request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let agent = self.agent(&ctx)?;
        let (upstream, action) = match &mut request.r#ref {
            Reference::Prompt(p) => {
                let name = p.name.clone();
                let (upstream, prompt) = self.route(&name)?;
                p.name = prompt.to_owned();
                let action = format!("{}prompt.{prompt}", upstream.prefix);
                (upstream, action)
            }
            Reference::Resource(r) => {
                let upstream = self.template_owner(&r.uri).await.ok_or_else(|| {
                    McpError::resource_not_found(
                        format!("no upstream has the resource template `{}`", r.uri),
                        None,
                    )
                })?;
                let action = format!("{}resources.read", upstream.prefix);
                (upstream, action)
            }
            _ => {
                return Err(McpError::invalid_params(
                    "a completion reference of an unknown type",
                    None,
                ));
            }
        };
        let reach = self.reachable(&agent, vec![action.clone()]).await?;
        if !reach.contains(&action) {
            return Err(McpError::new(
                ErrorCode(DENIED),
                format!("denied by Bridle (not_granted): `{action}` is not granted to this agent"),
                Some(json!({"reason": "not_granted", "action": action})),
            ));
        }
        let span = telemetry::mcp_client(
            "completion/complete",
            Target::None,
            &upstream.name,
            &mut request.meta,
        );
        let result = upstream
            .call(|p| async move { p.complete(request).await })
            .instrument(span.clone())
            .await
            .map(|mut r| {
                r.result_type.get_or_insert(ResultType::COMPLETE);
                r
            });
        telemetry::ended(&span, &result, false);
        result
    }

    pub(crate) fn route<'a>(&self, name: &'a str) -> Result<(Arc<Upstream>, &'a str), McpError> {
        self.0
            .upstreams
            .route(name)
            .map(|(u, rest)| (u.clone(), rest))
            .ok_or_else(|| McpError::invalid_params(format!("unknown name `{name}`"), None))
    }
}

impl ServerHandler for Proxy {
    #[expect(
        deprecated,
        reason = "logging is still part of the protocol versions clients speak today"
    )]
    fn get_info(&self) -> InitializeResult {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_logging()
            .enable_completions()
            .build();
        InitializeResult::new(caps)
            .with_server_info(Implementation::new(
                "bridle-gateway",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Bridle MCP gateway: every call is decided against your agent's governance record.",
            )
    }

    /// Every filter is taken as asked; its URIs are decided when the
    /// stream opens ([`crate::listen`]).
    fn accepted_subscription_filter(
        &self,
        requested: &rmcp::model::SubscriptionFilter,
    ) -> Option<rmcp::model::SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, context: rmcp::service::SubscriptionContext) -> Result<(), McpError> {
        let span = telemetry::mcp_server(
            "subscriptions/listen",
            Target::None,
            context.request_context(),
        );
        let result = self.listen_in(context).instrument(span.clone()).await;
        telemetry::ended(&span, &result, false);
        result
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let span = telemetry::mcp_server("tools/list", Target::None, &ctx);
        let result = self.list_tools_in(&ctx).instrument(span.clone()).await;
        telemetry::ended(&span, &result, false);
        result
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let span = telemetry::mcp_server("tools/call", Target::Tool(&request.name), &ctx);
        let result = self
            .call_tool_in(request, ctx)
            .instrument(span.clone())
            .await;
        let tool_error =
            matches!(&result, Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true));
        telemetry::ended(&span, &result, tool_error);
        result
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let agent = self.agent(&ctx)?;
        let mut prompts = Vec::new();
        for u in &self.0.upstreams.all {
            match u.call(|p| async move { p.list_all_prompts().await }).await {
                Ok(list) => prompts.extend(list.into_iter().map(|p| (u.prefix.clone(), p))),
                Err(e) => {
                    tracing::warn!(upstream = %u.name, error = %e.message, "prompts/list failed")
                }
            }
        }
        let actions = prompts
            .iter()
            .map(|(prefix, p)| format!("{prefix}prompt.{}", p.name))
            .collect();
        let reach = self.reachable(&agent, actions).await?;
        let visible = prompts
            .into_iter()
            .filter(|(prefix, p)| reach.contains(&format!("{prefix}prompt.{}", p.name)))
            .map(|(prefix, mut p)| {
                p.name = format!("{prefix}{}", p.name);
                p
            })
            .collect();
        Ok(ListPromptsResult::with_all_items(visible))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let span = telemetry::mcp_server("prompts/get", Target::Prompt(&request.name), &ctx);
        let result = self
            .get_prompt_in(request, ctx)
            .instrument(span.clone())
            .await;
        telemetry::ended(&span, &result, false);
        result
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let agent = self.agent(&ctx)?;
        let list = self.list_resources_for(&agent).await?;
        Ok(ListResourcesResult::with_all_items(list))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        self.list_templates_in(&ctx).await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let span = telemetry::mcp_server("resources/read", Target::None, &ctx);
        let result = self
            .read_resource_in(request, ctx)
            .instrument(span.clone())
            .await;
        telemetry::ended(&span, &result, false);
        result
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let span = telemetry::mcp_server("completion/complete", Target::None, &ctx);
        let result = self
            .completion_in(request, ctx)
            .instrument(span.clone())
            .await;
        telemetry::ended(&span, &result, false);
        result
    }

    #[expect(
        deprecated,
        reason = "logging is still part of the protocol versions clients speak today"
    )]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.agent(&ctx)?;
        // Only the session's links carry its log messages: the shared
        // connections' level is not the agent's to set.
        self.1.set_level(request.level, &self.0.upstreams.all).await;
        Ok(())
    }

    async fn subscribe(
        &self,
        request: rmcp::model::SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let span = telemetry::mcp_server("resources/subscribe", Target::None, &ctx);
        let result = self
            .subscribe_in(request, ctx)
            .instrument(span.clone())
            .await;
        telemetry::ended(&span, &result, false);
        result
    }

    async fn unsubscribe(
        &self,
        request: rmcp::model::UnsubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let span = telemetry::mcp_server("resources/unsubscribe", Target::None, &ctx);
        let result = self
            .unsubscribe_in(request, ctx)
            .instrument(span.clone())
            .await;
        telemetry::ended(&span, &result, false);
        result
    }
}
