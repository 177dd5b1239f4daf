//! `subscriptions/listen` (2026-07-28): one request whose stream carries
//! the notifications its filter names. Each resource URI in the filter is
//! decided like a `resources/read` when the stream opens (a denied one
//! ends it with the read's error); the gateway subscribes to the URI once
//! on the shared connection to the upstream that has it (however many
//! streams want it) and hands each update to every stream that listens to
//! that URI, decided again for that stream's agent. `list_changed` from a
//! shared connection goes to every stream whose filter asks for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use rmcp::model::{SubscribeRequestParams, UnsubscribeRequestParams};
use rmcp::service::{RoleClient, SubscriptionContext, SubscriptionSink};
use rmcp::{ErrorData as McpError, Peer};
use tokio::sync::Notify;

use crate::bridle::{AgentToken, Bridle};
use crate::proxy::Proxy;
use crate::subscriptions::{Recheck, recheck};
use crate::upstream::Upstream;

/// Every open stream, and how many want each (upstream, URI).
#[derive(Debug, Default)]
pub struct Listeners {
    all: Mutex<Vec<Weak<Listening>>>,
    wanted: Mutex<HashMap<(String, String), usize>>,
}

/// One open `subscriptions/listen` stream.
#[derive(Debug)]
pub(crate) struct Listening {
    agent: AgentToken,
    sink: SubscriptionSink,
    /// (upstream, URI) pairs it listens to.
    uris: Vec<(String, String)>,
    /// Set, with why, when the agent may no longer hold the stream.
    ended: Notify,
    why: Mutex<Option<McpError>>,
}

impl Listening {
    fn end(&self, why: McpError) {
        if let Ok(mut w) = self.why.lock() {
            w.get_or_insert(why);
        }
        self.ended.notify_one();
    }
}

impl Listeners {
    fn live(&self) -> Vec<Arc<Listening>> {
        self.all
            .lock()
            .map(|all| all.iter().filter_map(Weak::upgrade).collect())
            .unwrap_or_default()
    }

    /// Count `key` wanted once more; true when it is the first.
    fn want(&self, key: &(String, String)) -> bool {
        let Ok(mut wanted) = self.wanted.lock() else {
            return false;
        };
        let n = wanted.entry(key.clone()).or_default();
        *n += 1;
        *n == 1
    }

    /// Count `key` wanted once less; true when nobody wants it now.
    fn unwant(&self, key: &(String, String)) -> bool {
        let Ok(mut wanted) = self.wanted.lock() else {
            return false;
        };
        match wanted.get_mut(key) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                wanted.remove(key);
                true
            }
            None => false,
        }
    }

    /// A shared connection's `resources/updated` for `uri` of `upstream`:
    /// to every stream listening to it whose agent may still read it.
    pub(crate) async fn updated(&self, bridle: &Bridle, upstream: &str, prefix: &str, uri: &str) {
        for l in self.live() {
            if !l.uris.iter().any(|(u, r)| u == upstream && r == uri) {
                continue;
            }
            match recheck(bridle, &l.agent, prefix, uri).await {
                Recheck::Allowed(decision) => {
                    let delivered = l.sink.notify_resource_updated(uri).await.is_ok();
                    if let Err(e) = bridle
                        .outcome(&l.agent, &decision, delivered, Vec::new())
                        .await
                    {
                        tracing::warn!(decision = %decision, error = %e, "outcome not recorded");
                    }
                }
                Recheck::Denied(error) => l.end(error),
                Recheck::NoAnswer => {}
            }
        }
    }

    /// A shared connection's `list_changed`, to every stream that asked.
    pub(crate) async fn changed(&self, what: crate::relay::Changed) {
        use crate::relay::Changed;
        for l in self.live() {
            // The sink sends only what the stream's filter accepted.
            let _ = match what {
                Changed::Tools => l.sink.notify_tool_list_changed().await,
                Changed::Prompts => l.sink.notify_prompt_list_changed().await,
                Changed::Resources => l.sink.notify_resource_list_changed().await,
            };
        }
    }
}

#[expect(deprecated, reason = "the shared connections speak 2025-11-25")]
async fn subscribe(upstream: &Upstream, uri: &str, on: bool) -> Result<(), McpError> {
    let uri = uri.to_owned();
    let ask = |p: Peer<RoleClient>| async move {
        if on {
            p.subscribe(SubscribeRequestParams::new(uri)).await
        } else {
            p.unsubscribe(UnsubscribeRequestParams::new(uri)).await
        }
    };
    upstream.call(ask).await
}

impl Proxy {
    pub(crate) async fn listen_in(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let ctx = context.request_context();
        let agent = self.agent(ctx)?;
        let listeners = &self.0.sessions.listeners;
        let mut uris = Vec::new();
        for uri in context.accepted().resource_subscriptions.iter().flatten() {
            let (_, upstream, decision) = self.decide_read(ctx, uri).await?;
            self.report(agent.clone(), &decision, true, Vec::new());
            uris.push((upstream, uri.clone()));
        }
        let keys: Vec<(String, String)> = uris
            .iter()
            .map(|(u, uri)| (u.name.clone(), uri.clone()))
            .collect();
        let listening = Arc::new(Listening {
            agent,
            sink: context.sink().clone(),
            uris: keys.clone(),
            ended: Notify::new(),
            why: Mutex::new(None),
        });
        if let Ok(mut all) = listeners.all.lock() {
            all.retain(|l| l.strong_count() > 0);
            all.push(Arc::downgrade(&listening));
        }
        let mut result = Ok(());
        let mut held = 0;
        for ((upstream, uri), key) in uris.iter().zip(&keys) {
            held += 1;
            if listeners.want(key)
                && let Err(e) = subscribe(upstream, uri, true).await
            {
                result = Err(e);
                break;
            }
        }
        if result.is_ok() {
            tokio::select! {
                () = context.cancelled() => {}
                () = listening.ended.notified() => {
                    if let Some(why) = listening.why.lock().ok().and_then(|mut w| w.take()) {
                        result = Err(why);
                    }
                }
            }
        }
        for ((upstream, uri), key) in uris.iter().zip(&keys).take(held) {
            if listeners.unwant(key)
                && let Err(e) = subscribe(upstream, uri, false).await
            {
                tracing::debug!(upstream = %upstream.name, error = %e.message, "upstream not told of an ended subscription");
            }
        }
        result
    }
}
