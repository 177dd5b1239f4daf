//! Resource subscriptions (`resources/subscribe`, `resources/unsubscribe`,
//! 2025-11-25 and older). A subscription is decided like a
//! `resources/read` of its URI, and refused the same way; it is made on
//! the session's own link to the upstream that has the URI
//! ([`crate::relay`]), so the upstream's `notifications/resources/updated`
//! for it reach that session only. Each update is decided again before it
//! is relayed (the agent may have lost the URI since): an update the agent
//! may no longer read is dropped and ends the subscription upstream.
#![expect(
    deprecated,
    reason = "resources/subscribe is how clients on 2025-11-25 and older subscribe"
)]

use rmcp::ErrorData as McpError;
use rmcp::model::{
    ClientRequest, ResourceUpdatedNotificationParam, ServerResult, SubscribeRequest,
    SubscribeRequestParams, UnsubscribeRequest, UnsubscribeRequestParams,
};
use rmcp::service::{Peer, RequestContext, RoleClient, RoleServer};
use serde_json::Map;
use tracing::Instrument as _;

use crate::bridle::{AgentToken, Bridle, BridleError};
use crate::proxy::{Proxy, bridle_error, denied};
use crate::relay::{LinkOf, Route};
use crate::telemetry::{self, Target};

impl Proxy {
    pub(crate) async fn subscribe_in(
        &self,
        mut request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let uri = request.uri.clone();
        let (agent, upstream, decision) = self.decide_read(&ctx, &uri).await?;
        let span = telemetry::mcp_client(
            "resources/subscribe",
            Target::None,
            &upstream.name,
            &mut request.meta,
        );
        let forward = ClientRequest::SubscribeRequest(SubscribeRequest::new(request));
        let result = self
            .forward(&upstream, &ctx, forward, None)
            .instrument(span.clone())
            .await
            .and_then(|r| match r {
                ServerResult::EmptyResult(_) => Ok(()),
                _ => Err(upstream.unexpected()),
            });
        telemetry::ended(&span, &result, false);
        if result.is_ok()
            && let Ok(mut subs) = self.1.route.subscriptions.lock()
        {
            subs.insert(uri, upstream.name.clone());
        }
        self.report(agent, &decision, result.is_ok(), Vec::new());
        result
    }

    /// Not decided: it only ends what the agent asked for. A URI the
    /// session never subscribed to is not asked upstream.
    pub(crate) async fn unsubscribe_in(
        &self,
        mut request: UnsubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.agent(&ctx)?;
        let owner = self
            .1
            .route
            .subscriptions
            .lock()
            .ok()
            .and_then(|mut s| s.remove(&request.uri));
        let Some(name) = owner else {
            return Ok(());
        };
        let Some(upstream) = self.0.upstreams.all.iter().find(|u| u.name == name) else {
            return Ok(());
        };
        let Some(conn) = self.1.link(&name).await else {
            // The link is gone, and the subscription with it.
            return Ok(());
        };
        let span = telemetry::mcp_client(
            "resources/unsubscribe",
            Target::None,
            &upstream.name,
            &mut request.meta,
        );
        let forward = ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(request));
        let result = upstream
            .forward(conn, forward, None, ctx.id.clone())
            .instrument(span.clone())
            .await
            .map(|_| ());
        telemetry::ended(&span, &result, false);
        result
    }
}

/// An upstream's `notifications/resources/updated` on a session's link:
/// relayed when the session subscribed to the URI on that upstream and the
/// agent may still read it (decided again, audited like any decision).
pub(crate) async fn updated(
    link: &LinkOf,
    route: &Route,
    agent_peer: &Peer<RoleServer>,
    upstream_peer: &Peer<RoleClient>,
    params: ResourceUpdatedNotificationParam,
) {
    let uri = params.uri.clone();
    if !route.subscribed(&uri, &link.upstream) {
        return;
    }
    let Some(agent) = route.agent() else {
        return;
    };
    let decision = match recheck(&link.bridle, &agent, &link.prefix, &uri).await {
        Recheck::Allowed(d) => d,
        Recheck::Denied(_) => {
            end(route, upstream_peer, &uri).await;
            return;
        }
        Recheck::NoAnswer => return,
    };
    let delivered = match agent_peer.notify_resource_updated(params).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "resource update not delivered");
            false
        }
    };
    if let Err(e) = link
        .bridle
        .outcome(&agent, &decision, delivered, Vec::new())
        .await
    {
        tracing::warn!(decision = %decision, error = %e, "outcome not recorded");
    }
}

/// A resource update decided again for the agent that subscribed.
pub(crate) enum Recheck {
    /// Relay it; the decision's id, for its outcome.
    Allowed(String),
    /// The agent may no longer read the URI (or its token is no longer
    /// good): the subscription ends, with this error.
    Denied(McpError),
    /// The server did not answer: this update is dropped (fail closed),
    /// the subscription kept.
    NoAnswer,
}

pub(crate) async fn recheck(
    bridle: &Bridle,
    agent: &AgentToken,
    prefix: &str,
    uri: &str,
) -> Recheck {
    let action = format!("{prefix}resources.read");
    match bridle.decide(agent, &action, &Map::new(), Some(uri)).await {
        Ok(d) if d.decision == "allow" => Recheck::Allowed(d.decision_id),
        Ok(d) => Recheck::Denied(denied(&d)),
        Err(e @ BridleError::Unauthenticated(_)) => Recheck::Denied(bridle_error(e)),
        Err(e) => {
            tracing::warn!(error = %e, "resource update not relayed: no decision");
            Recheck::NoAnswer
        }
    }
}

/// End a subscription the agent may no longer hold, here and upstream.
async fn end(route: &Route, upstream_peer: &Peer<RoleClient>, uri: &str) {
    if let Ok(mut subs) = route.subscriptions.lock() {
        subs.remove(uri);
    }
    let ended = upstream_peer
        .unsubscribe(UnsubscribeRequestParams::new(uri))
        .await;
    if let Err(e) = ended {
        tracing::debug!(error = %e, "upstream not told of an ended subscription");
    }
}
