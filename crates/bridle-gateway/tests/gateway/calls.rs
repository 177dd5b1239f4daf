//! Listing, deciding and forwarding calls, and held calls: approved, not
//! approved in time, abandoned.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, ErrorCode};
use serde_json::{Value, json};

use super::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_are_listed_decided_and_forwarded() {
    let env = start().await;
    let token = env.token(&env.mcp).await;
    let client = env.client(&token).await;

    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| {
            assert!(t.description.is_some(), "descriptions are kept");
            t.name.to_string()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "up.add",
            "up.bare",
            "up.change",
            "up.chatty",
            "up.echo",
            "up.late",
            "up.touch"
        ],
        "only reachable tools are listed"
    );

    let echo = CallToolRequestParams::new("up.echo").with_arguments(
        json!({"message": "hi https://example.com/doc"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let r = client.call_tool(echo).await.unwrap();
    assert_eq!(text(&r), "Echo: hi https://example.com/doc");

    for (tool, reason) in [
        ("up.secret_dump", "forbidden"),
        ("up.delete", "not_granted"),
    ] {
        let e = mcp_error(
            client
                .call_tool(CallToolRequestParams::new(tool))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, ErrorCode(bridle_gateway::proxy::DENIED), "{tool}");
        assert_eq!(
            e.data.as_ref().unwrap()["reason"],
            reason,
            "{tool}: {}",
            e.message
        );
        assert!(e.message.contains(reason), "{}", e.message);
    }

    // The outcome and its retrieval reach the audit log.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let audit = env.get("/v1/audit?type=outcome", ADMIN).await;
        let found = audit["events"].as_array().unwrap().iter().any(|e| {
            e["retrievals"]
                .as_array()
                .is_some_and(|r| r.iter().any(|u| u == "https://example.com/doc"))
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no outcome in the audit log: {audit}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_required_call_completes_once_approved() {
    let env = start().await;
    let approver = approver(&env).await;
    let token = env.token(&env.mcp).await;
    let client = env.client(&token).await;
    let add = CallToolRequestParams::new("up.add")
        .with_arguments(json!({"a": 2, "b": 3}).as_object().unwrap().clone());
    let call = tokio::spawn({
        let peer = client.peer().clone();
        async move { peer.call_tool(add).await }
    });
    // The call is held; an approver approves the pending request.
    let deadline = Instant::now() + Duration::from_secs(15);
    let id = loop {
        let pending = env.get("/v1/approvals?state=pending", ADMIN).await;
        if let Some(a) = pending["approvals"].as_array().and_then(|a| a.first()) {
            break a["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no pending approval");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!call.is_finished(), "the call waits for the approval");
    env.post(&format!("/v1/approvals/{id}/approve"), &approver, json!({}))
        .await;
    let r = call.await.unwrap().unwrap();
    assert_eq!(text(&r), "5");
    let a = env.get(&format!("/v1/approvals/{id}"), ADMIN).await;
    assert_eq!(a["state"], "consumed", "{a}");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_active_tokens_for_this_gateway_get_in() {
    let env = start().await;
    let http = &env.http;
    let r = http.post(&env.mcp).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let gw = env.mcp.trim_end_matches("/mcp");
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{gw}/.well-known/oauth-protected-resource\"")
    );

    let meta = resource_metadata(&env).await;
    assert_eq!(meta["resource"], env.mcp.as_str());
    assert_eq!(meta["authorization_servers"], json!([env.bridle]));

    // A token for the server's own audience is not one for the gateway.
    let other = env.token(&env.bridle).await;
    let r = http
        .post(&env.mcp)
        .bearer_auth(&other)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    // A revoked token is refused.
    let token = env.token(&env.mcp).await;
    let client = env.client(&token).await;
    assert_eq!(client.list_all_tools().await.unwrap().len(), 7);
    let r = http
        .post(format!("{}/oauth/revoke", env.bridle))
        .bearer_auth(ADMIN)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(&env.mcp)
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_not_granted_in_time_names_the_approval() {
    let env = start_waiting("1s").await;
    let token = env.token(&env.mcp).await;
    let client = env.client(&token).await;
    let add = CallToolRequestParams::new("up.add")
        .with_arguments(json!({"a": 1, "b": 1}).as_object().unwrap().clone());
    let e = mcp_error(client.call_tool(add).await.unwrap_err());
    assert_eq!(e.code, ErrorCode(bridle_gateway::proxy::APPROVAL_PENDING));
    let id = e.data.as_ref().unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(e.message.contains(&id), "{}", e.message);
    let a = env.get(&format!("/v1/approvals/{id}"), ADMIN).await;
    assert_eq!(a["state"], "pending", "{a}");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_call_the_agent_abandons_never_runs_and_leaves_its_approval() {
    let env = start().await;
    let token = env.token(&env.mcp).await;
    abandon_a_held_call(&env, |id, params| {
        modern(&env, &token, id, "tools/call", params)
    })
    .await;
}

/// The same on 2025-11-25, where the session outlives the connection the
/// call came on: the connection closing is the agent giving up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_call_whose_connection_closes_in_a_session_never_runs() {
    let env = start().await;
    let token = env.token(&env.mcp).await;
    let session = legacy_session(&env, &token).await;
    abandon_a_held_call(&env, |id, params| {
        legacy(&env, &token, &session, id, "tools/call", params)
    })
    .await;
}

/// The agent sends a held call and goes away (the HTTP request dropped);
/// approved afterwards, it is never forwarded, and the agent's retry runs
/// on the approval, once.
async fn abandon_a_held_call(env: &Env, send: impl Fn(u64, Value) -> reqwest::RequestBuilder) {
    let approver = approver(env).await;
    let add = json!({"name": "up.add", "arguments": {"a": 2, "b": 3}});
    let held = tokio::spawn(send(1, add.clone()).send());
    let id = pending_approval(env).await;
    held.abort();
    let _ = held.await;
    // Approved after the agent left: the abandoned call is not forwarded.
    let deadline = Instant::now() + Duration::from_secs(7);
    env.post(&format!("/v1/approvals/{id}/approve"), &approver, json!({}))
        .await;
    while Instant::now() < deadline {
        let a = env.get(&format!("/v1/approvals/{id}"), ADMIN).await;
        assert_eq!(
            a["state"], "approved",
            "the abandoned call used the approval: {a}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(env.adds.load(Ordering::SeqCst), 0, "the abandoned call ran");
    let r = send(2, add).send().await.unwrap();
    let v = response(r).await;
    assert_eq!(v["result"]["content"][0]["text"], "5", "{v}");
    assert_eq!(env.adds.load(Ordering::SeqCst), 1);
    let a = env.get(&format!("/v1/approvals/{id}"), ADMIN).await;
    assert_eq!(a["state"], "consumed", "{a}");
}

/// A forwarded call the agent gives up on (`notifications/cancelled`)
/// while the upstream runs it: the upstream is told and stops, rather than
/// finishing work nobody waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_call_the_agent_cancels_is_cancelled_upstream() {
    use rmcp::model::{CallToolRequest, ClientRequest};
    use rmcp::service::PeerRequestOptions;
    let env = start().await;
    let token = env.token(&env.mcp).await;
    let client = env.client(&token).await;
    let slow = CallToolRequestParams::new("up.echo")
        .with_arguments(json!({"message": "slow"}).as_object().unwrap().clone());
    let call = client
        .peer()
        .send_cancellable_request(
            ClientRequest::CallToolRequest(CallToolRequest::new(slow)),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.slow.0.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the call never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call.cancel(Some("the agent gave up".into())).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.slow.1.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the upstream was never told");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.cancel().await.unwrap();
}
