//! Approval notifications: a CloudEvents 1.0 JSON event reaches every
//! configured webhook for each new approval, retried when the receiver
//! fails, and never delays the decision.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

use crate::common::{Backend, Server, eventually};

/// A receiver that fails its first request (to exercise the retry), then
/// records every event it is sent.
async fn receiver() -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let failed_once = Arc::new(Mutex::new(false));
    let app = Router::new().route(
        "/hook",
        post({
            let seen = Arc::clone(&seen);
            move |headers: axum::http::HeaderMap, body: String| {
                let seen = Arc::clone(&seen);
                let failed_once = Arc::clone(&failed_once);
                async move {
                    let mut failed = failed_once.lock().unwrap();
                    if !*failed {
                        *failed = true;
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let ct = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    seen.lock()
                        .unwrap()
                        .push((ct, serde_json::from_str(&body).unwrap()));
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_approval_is_announced_as_a_cloudevent() {
    let (url, seen) = receiver().await;
    let s = Server::start(Backend::Sqlite, move |c| c.webhooks = vec![url]).await;
    let _people = s.people().await;
    s.load("procurement-bot").await;
    let token = s.agent_token("procurement-bot").await;
    let d = s
        .decide(
            &token,
            "procurement.create_purchase_request",
            json!({"vendor": "acme", "amount": 7000}),
        )
        .await;
    assert_eq!(d["decision"], "approval_required");
    let approval_id = d["approval_id"].as_str().unwrap().to_owned();

    eventually(15, "the webhook receives the approval event", || {
        let seen = Arc::clone(&seen);
        async move { !seen.lock().unwrap().is_empty() }
    })
    .await;
    let events = seen.lock().unwrap().clone();
    let (content_type, event) = &events[0];
    assert_eq!(content_type, "application/cloudevents+json");
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "dev.bridle.approval.requested");
    assert_eq!(event["subject"], approval_id.as_str());
    assert!(event["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(event["data"]["id"], approval_id.as_str());
    assert_eq!(
        event["data"]["action"],
        "procurement.create_purchase_request"
    );
    assert_eq!(event["data"]["args"]["amount"], 7000);
    // The same request again reuses the pending approval.
    let again = s
        .decide(
            &token,
            "procurement.create_purchase_request",
            json!({"vendor": "acme", "amount": 7000}),
        )
        .await;
    assert_eq!(again["approval_id"], approval_id.as_str());
}
