//! What the gateway relays besides calls: completion, and the upstream's
//! progress during a call.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rmcp::model::{
    ArgumentInfo, CallToolRequestParams, CompleteRequestParams, ErrorCode,
    ProgressNotificationParam, Reference,
};
use rmcp::service::ServiceError;
use rmcp::{ClientHandler, RoleClient};
use serde_json::json;

use super::harness::*;

/// `completion/complete` reaches the upstream for a prompt the agent may
/// get, answered in the negotiated revision's shape; for a prompt it may
/// not, it is refused as not granted and never asked upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_is_relayed_only_for_what_the_agent_may_reach() {
    let env = start().await;
    let token = env.token(&env.mcp).await;
    let client = env.client(&token).await;
    let r = client
        .complete(CompleteRequestParams::new(
            Reference::for_prompt("up.greet"),
            ArgumentInfo::new("name", "al"),
        ))
        .await
        .unwrap();
    assert_eq!(r.completion.values, vec!["alice", "alfred"]);
    assert_eq!(env.completions.load(Ordering::SeqCst), 1);

    let e = client
        .complete(CompleteRequestParams::new(
            Reference::for_prompt("up.vault"),
            ArgumentInfo::new("name", ""),
        ))
        .await
        .unwrap_err();
    let ServiceError::McpError(e) = e else {
        panic!("{e:?}")
    };
    assert_eq!(e.code, ErrorCode(-32001), "{e:?}");
    assert!(e.message.contains("up.prompt.vault"), "{}", e.message);
    assert_eq!(
        env.completions.load(Ordering::SeqCst),
        1,
        "an ungranted completion was asked upstream"
    );
    client.cancel().await.unwrap();
}

/// An agent that records the progress notifications it gets.
#[derive(Debug, Clone, Default)]
struct Progress(Arc<std::sync::Mutex<Vec<ProgressNotificationParam>>>);

impl ClientHandler for Progress {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.0.lock().unwrap().push(params);
    }
}

/// Progress an upstream reports during a call reaches the agent that
/// made the call, on the agent's own token; the upstream sees a token of
/// the gateway's client. Two sessions that chose the same token (rmcp's
/// client numbers its requests' tokens from 0) each get their own
/// progress, never the other's. (rmcp handles each notification in a task of its own, on
/// the gateway and in the agent, so the order they arrive in is not
/// guaranteed; the gateway drops progress a later one overtook.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_progress_reaches_the_agent_on_its_own_token() {
    let env = start().await;
    let token = env.token(&env.mcp).await;
    // rmcp's client gives every request a progress token of its own.
    let call = || {
        CallToolRequestParams::new("up.echo").with_arguments(
            json!({"message": "with progress"})
                .as_object()
                .unwrap()
                .clone(),
        )
    };
    let (one, two) = (Progress::default(), Progress::default());
    let a = env.client_with(&token, one.clone()).await;
    let b = env.client_with(&token, two.clone()).await;
    let (ra, rb) = tokio::join!(a.call_tool(call()), b.call_tool(call()));
    let upstream_saw: Vec<String> = [ra.unwrap(), rb.unwrap()]
        .iter()
        .map(|r| r.content[0].as_text().unwrap().text.clone())
        .collect();
    assert!(
        upstream_saw.iter().all(|t| !t.ends_with("null")),
        "{upstream_saw:?}"
    );

    // The last step is never stale: it always arrives.
    let last = |seen: &Progress| seen.0.lock().unwrap().iter().any(|p| p.progress == 2.0);
    for seen in [&one, &two] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !last(seen) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Anything relayed twice, or to the other session, has come by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let agents = one.0.lock().unwrap()[0].progress_token.clone();
    assert_eq!(
        two.0.lock().unwrap()[0].progress_token,
        agents,
        "the two sessions' tokens differ: no collision tested"
    );
    for seen in [&one, &two] {
        let mut got = seen.0.lock().unwrap().clone();
        got.sort_by(|a, b| a.progress.total_cmp(&b.progress));
        // Each step at most once: the other session's would double one.
        assert!(
            got.windows(2).all(|w| w[0].progress < w[1].progress),
            "{got:?}"
        );
        assert_eq!(got.last().map(|p| p.progress), Some(2.0), "{got:?}");
        for p in &got {
            assert_eq!(p.progress_token, agents);
            assert_eq!(p.total, Some(2.0));
            assert_eq!(
                p.message.as_deref(),
                Some(format!("upstream step {}", p.progress).as_str())
            );
        }
    }
    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
}

/// A held call's keep-alives, then the upstream's progress, on the
/// agent's one token: the upstream's is counted on from the last
/// keep-alive, so the agent sees progress that only rises, and the total
/// moves with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_calls_progress_rises_from_the_keep_alives_through_the_upstream() {
    let env = start().await;
    let approver = approver(&env).await;
    let token = env.token(&env.mcp).await;
    let seen = Progress::default();
    let client = env.client_with(&token, seen.clone()).await;
    let add = CallToolRequestParams::new("up.add")
        .with_arguments(json!({"a": 40, "b": 2}).as_object().unwrap().clone());
    let call = tokio::spawn({
        let peer = client.peer().clone();
        async move { peer.call_tool(add).await }
    });
    let id = pending_approval(&env).await;
    let has = |what: &str| {
        seen.0
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.message.as_deref().is_some_and(|m| m.contains(what)))
    };
    // Keep-alives come every 5 s while the call is held.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !has("waiting for approval") {
        assert!(Instant::now() < deadline, "no keep-alive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.post(&format!("/v1/approvals/{id}/approve"), &approver, json!({}))
        .await;
    let r = call.await.unwrap().unwrap();
    assert_eq!(text(&r), "42");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !has("upstream step 2") {
        assert!(
            Instant::now() < deadline,
            "the upstream's last step never came"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let got = seen.0.lock().unwrap().clone();
    let kept_alive = got
        .iter()
        .filter(|p| p.message.as_deref().is_some_and(|m| m.contains("waiting")))
        .map(|p| p.progress)
        .fold(0.0, f64::max);
    let relayed: Vec<_> = got
        .iter()
        .filter(|p| {
            p.message
                .as_deref()
                .is_some_and(|m| m.starts_with("upstream"))
        })
        .collect();
    assert!(kept_alive >= 1.0, "{got:?}");
    for p in &relayed {
        assert!(p.progress > kept_alive, "below a keep-alive: {got:?}");
        assert_eq!(p.total, Some(kept_alive + 2.0), "{got:?}");
    }
    let last = relayed.iter().map(|p| p.progress).fold(0.0, f64::max);
    assert_eq!(last, kept_alive + 2.0, "{got:?}");
    client.cancel().await.unwrap();
}
