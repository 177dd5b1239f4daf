//! What the test upstream sends its client besides answers: log messages,
//! elicitation (during a call and after it) and resource updates.

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{
    ClientResult, ElicitRequest, ElicitRequestParams, ElicitationSchema, ServerRequest,
};
#[expect(deprecated, reason = "logging is what 2025-11-25 servers send")]
use rmcp::model::{
    LoggingLevel, LoggingMessageNotificationParam, ResourceUpdatedNotificationParam,
};
use rmcp::service::{Peer, RequestContext, ServiceError};
use serde_json::json;

use super::harness::{Late, Subscribers};

/// `chatty`: a log message naming `who`, then an elicitation asking for a
/// name; the answer (or why there is none) is the result.
pub(crate) async fn chatty(who: &str, ctx: &RequestContext<RoleServer>) -> String {
    #[expect(deprecated, reason = "logging is what 2025-11-25 servers send")]
    let log = ctx
        .peer
        .notify_logging_message(LoggingMessageNotificationParam::new(
            LoggingLevel::Info,
            json!(format!("working for {who}")),
        ))
        .await;
    log.unwrap();
    let schema = ElicitationSchema::builder()
        .required_string("name")
        .build()
        .unwrap();
    let ask = ServerRequest::ElicitRequest(ElicitRequest::new(
        ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: format!("who are you, {who}?"),
            requested_schema: schema,
        },
    ));
    match ctx.peer.send_request(ask).await {
        Ok(ClientResult::ElicitResult(r)) => format!(
            "elicited: {} {}",
            json!(r.action),
            json!(r.content.unwrap_or_default())
        ),
        Ok(other) => format!("elicitation answered oddly: {other:?}"),
        Err(ServiceError::McpError(e)) => format!("elicitation refused: {}", e.message),
        Err(e) => format!("elicitation failed: {e}"),
    }
}

/// `late`: an elicitation once the call has been answered (caused by no
/// running call); what became of it goes to `late`.
pub(crate) fn late(peer: Peer<RoleServer>, late: Late) {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ask = ServerRequest::ElicitRequest(ElicitRequest::new(
            ElicitRequestParams::FormElicitationParams {
                meta: None,
                message: "too late?".to_owned(),
                requested_schema: ElicitationSchema::builder().build().unwrap(),
            },
        ));
        let got = match peer.send_request(ask).await {
            Ok(r) => format!("answered: {r:?}"),
            Err(ServiceError::McpError(e)) => format!("refused: {}", e.message),
            Err(e) => format!("failed: {e}"),
        };
        *late.lock().unwrap() = Some(got);
    });
}

/// `touch`: tell every session subscribed to `uri` that it changed.
pub(crate) async fn touch(subscribers: &Subscribers, uri: &str) -> String {
    let to: Vec<_> = subscribers
        .lock()
        .unwrap()
        .iter()
        .filter(|(u, _, _)| u == uri)
        .map(|(_, _, p)| p.clone())
        .collect();
    for peer in &to {
        peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
            .await
            .unwrap();
    }
    format!("touched {} subscribers", to.len())
}
