//! Resources: which upstream has a URI, listing, and `resources/read`,
//! decided as `{prefix}resources.read` with the URI as the resource.

use std::sync::Arc;

use rmcp::model::{
    ClientRequest, ListResourceTemplatesResult, ReadResourceRequest, ReadResourceRequestParams,
    ReadResourceResponse, ServerResult,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::Map;
use tracing::Instrument as _;

use crate::bridle::{AgentToken, Decision};
use crate::held::Held;
use crate::proxy::{Proxy, complete_read};
use crate::telemetry::{self, Target};
use crate::upstream::Upstream;

impl Proxy {
    /// Decide a read of `uri` (`resources/read`, `resources/subscribe`):
    /// the agent, the upstream that has the URI, and the decision to allow
    /// it (held for approval if need be).
    pub(crate) async fn decide_read(
        &self,
        ctx: &RequestContext<RoleServer>,
        uri: &str,
    ) -> Result<(AgentToken, Arc<Upstream>, Decision), McpError> {
        let agent = self.agent(ctx)?;
        let upstream = self.resource_owner(&agent, uri).await.ok_or_else(|| {
            McpError::resource_not_found(format!("no upstream lists `{uri}`"), None)
        })?;
        let action = format!("{}resources.read", upstream.prefix);
        let held = Held::of(ctx);
        let decision = self
            .decide(&agent, &action, &Map::new(), Some(uri), &held)
            .await?;
        held.check()?;
        Ok((agent, upstream, decision))
    }

    /// The upstreams (and their places) whose resources the agent can
    /// reach at all.
    async fn readable(&self, agent: &AgentToken) -> Result<Vec<(usize, Arc<Upstream>)>, McpError> {
        let ups = &self.0.upstreams.all;
        let action = |u: &Upstream| format!("{}resources.read", u.prefix);
        let reach = self
            .reachable(agent, ups.iter().map(|u| action(u)).collect())
            .await?;
        Ok(ups
            .iter()
            .enumerate()
            .filter(|(_, u)| reach.contains(&action(u)))
            .map(|(i, u)| (i, u.clone()))
            .collect())
    }

    pub(crate) async fn read_resource_in(
        &self,
        mut request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri.clone();
        let (agent, upstream, decision) = self.decide_read(&ctx, &uri).await?;
        let span = telemetry::mcp_client(
            "resources/read",
            Target::None,
            &upstream.name,
            &mut request.meta,
        );
        let forward = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(request));
        let result = self
            .forward(&upstream, &ctx, forward, None)
            .instrument(span.clone())
            .await
            .and_then(|r| match r {
                ServerResult::ReadResourceResult(r) => Ok(ReadResourceResponse::Complete(r)),
                ServerResult::InputRequiredResult(r) => Ok(ReadResourceResponse::InputRequired(r)),
                _ => Err(upstream.unexpected()),
            })
            .map(complete_read);
        telemetry::ended(&span, &result, false);
        self.report(agent, &decision, result.is_ok(), vec![uri]);
        result
    }

    /// The upstream that listed `uri`, listing again once if none did.
    pub(crate) async fn resource_owner(
        &self,
        agent: &AgentToken,
        uri: &str,
    ) -> Option<Arc<Upstream>> {
        let ups = &self.0.upstreams;
        let lookup = || {
            ups.resource_owner
                .read()
                .ok()
                .and_then(|m| m.get(uri).copied())
                .and_then(|i| ups.all.get(i).cloned())
        };
        if let Some(u) = lookup() {
            return Some(u);
        }
        if ups.all.len() == 1 {
            return ups.all.first().cloned();
        }
        let _ = self.list_resources_for(agent).await;
        if let Some(u) = lookup() {
            return Some(u);
        }
        self.template_owner(uri).await
    }

    /// The upstream with a resource template whose literal start (up to its
    /// first `{`) is the longest start of `uri`: a URI no listing names.
    pub(crate) async fn template_owner(&self, uri: &str) -> Option<Arc<Upstream>> {
        let mut best: Option<(usize, Arc<Upstream>)> = None;
        for u in &self.0.upstreams.all {
            let Ok(templates) = u
                .call(|p| async move { p.list_all_resource_templates().await })
                .await
            else {
                continue;
            };
            for t in templates {
                let literal = t.uri_template.split('{').next().unwrap_or_default().len();
                let fits = t
                    .uri_template
                    .get(..literal)
                    .is_some_and(|l| uri.starts_with(l));
                if fits && literal > 0 && best.as_ref().is_none_or(|(n, _)| literal > *n) {
                    best = Some((literal, u.clone()));
                }
            }
        }
        best.map(|(_, u)| u)
    }

    pub(crate) async fn list_resources_for(
        &self,
        agent: &AgentToken,
    ) -> Result<Vec<rmcp::model::Resource>, McpError> {
        let ups = &self.0.upstreams;
        let mut out = Vec::new();
        for (i, u) in self.readable(agent).await? {
            match u
                .call(|p| async move { p.list_all_resources().await })
                .await
            {
                Ok(list) => {
                    if let Ok(mut owners) = ups.resource_owner.write() {
                        for r in &list {
                            owners.insert(r.uri.clone(), i);
                        }
                    }
                    out.extend(list);
                }
                Err(e) => {
                    tracing::warn!(upstream = %u.name, error = %e.message, "resources/list failed")
                }
            }
        }
        Ok(out)
    }

    pub(crate) async fn list_templates_in(
        &self,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let agent = self.agent(ctx)?;
        let mut out = Vec::new();
        for (_, u) in self.readable(&agent).await? {
            match u
                .call(|p| async move { p.list_all_resource_templates().await })
                .await
            {
                Ok(list) => out.extend(list),
                Err(e) => {
                    tracing::warn!(upstream = %u.name, error = %e.message, "resources/templates/list failed")
                }
            }
        }
        Ok(ListResourceTemplatesResult::with_all_items(out))
    }
}
