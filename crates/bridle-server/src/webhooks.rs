//! Approval notifications: a CloudEvents 1.0 JSON event to every configured
//! webhook for each new approval, delivered in the background with retries
//! and backoff. Never on the decision path. In-process waiters (the
//! long-poll of `GET /v1/approvals/{id}/wait`) are woken by the same call.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

const ATTEMPTS: u32 = 5;

#[derive(Debug, Clone)]
pub struct Notifier {
    tx: Option<mpsc::Sender<serde_json::Value>>,
    /// Bumped on every notification; waiters re-read what they wait for.
    changed: watch::Sender<u64>,
}

impl Notifier {
    pub fn start(urls: Vec<String>) -> Self {
        let (changed, _) = watch::channel(0);
        if urls.is_empty() {
            return Self { tx: None, changed };
        }
        let (tx, mut rx) = mpsc::channel::<serde_json::Value>(1024);
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                for url in &urls {
                    tokio::spawn(deliver(url.clone(), event.clone()));
                }
            }
        });
        Self {
            tx: Some(tx),
            changed,
        }
    }

    /// Wake every waiter (an approval was decided on another replica).
    pub fn poke(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every later notification.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Queue `data` as a CloudEvent of `kind`; drops it (with a warning)
    /// rather than block when the queue is full.
    pub fn notify(&self, kind: &str, subject: &str, data: serde_json::Value) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        let Some(tx) = &self.tx else { return };
        let event = serde_json::json!({
            "specversion": "1.0",
            "id": crate::tokens::random_token(12),
            "source": "bridle",
            "type": kind,
            "subject": subject,
            "time": jiff::Timestamp::now().to_string(),
            "datacontenttype": "application/json",
            "data": data,
        });
        if tx.try_send(event).is_err() {
            tracing::warn!(kind, subject, "webhook queue full; notification dropped");
        }
    }
}

async fn deliver(url: String, event: serde_json::Value) {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    else {
        return;
    };
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(&url)
            .header("content-type", "application/cloudevents+json")
            .body(event.to_string())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(%url, attempt, status = %r.status(), "webhook rejected"),
            Err(e) => tracing::warn!(%url, attempt, error = %e, "webhook unreachable"),
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    tracing::error!(%url, "webhook gave up after {ATTEMPTS} attempts");
}
