//! The audit viewer (`/console/audit`): the events the signed-in principal
//! may read (`access::audit_events`), filtered by agent, type and time,
//! a page at a time; one event in full; for `admin` and `auditor` the
//! chain's verification and its latest checkpoint.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use bridle_core::audit::{AuditEvent, EventType};
use bridle_core::id::AgentId;
use bridle_store::{AuditFilter, CheckpointStore as _};
use serde::Deserialize;

use super::{Chrome, ConsoleError, SignedIn, page, when};
use crate::capability::AuditReader;
use crate::error::ApiError;
use crate::state::AppState;

const PAGE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    agent: String,
    #[serde(default, rename = "type")]
    kind: String,
    /// `YYYY-MM-DD` or an RFC 3339 instant.
    #[serde(default)]
    since: String,
    after: Option<u64>,
}

struct Line {
    seq: u64,
    time: String,
    kind: &'static str,
    actor: String,
    agent: String,
    summary: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    c: Chrome,
    lines: Vec<Line>,
    agent: String,
    kind: String,
    since: String,
    kinds: Vec<&'static str>,
    next: Option<String>,
    chain: Option<String>,
}

#[derive(Template)]
#[template(path = "console/event.html")]
struct EventPage {
    c: Chrome,
    seq: u64,
    body: String,
    hash: String,
    prev_hash: String,
}

fn summary(e: &AuditEvent) -> String {
    let b = &e.body;
    let mut parts = Vec::new();
    if let Some(a) = &b.action {
        parts.push(a.clone());
    }
    if let Some(d) = b.decision {
        parts.push(d.as_str().to_owned());
    }
    if let Some(op) = b
        .detail
        .as_ref()
        .and_then(|d| d.get("op"))
        .and_then(|o| o.as_str())
    {
        parts.push(op.to_owned());
    }
    parts.join(" · ")
}

fn since(text: &str) -> Result<Option<jiff::Timestamp>, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(Some(t));
    }
    let date: jiff::civil::Date = text.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "`{text}` is not a date (YYYY-MM-DD) or an RFC 3339 instant"
        ))
    })?;
    jiff::tz::TimeZone::UTC
        .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
        .map(Some)
        .map_err(|e| ApiError::BadRequest(format!("`{text}`: {e}")))
}

pub async fn list(
    State(state): State<AppState>,
    s: SignedIn,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ConsoleError> {
    let Query(q) = q.map_err(crate::routes::query_error)?;
    let agent = match q.agent.trim() {
        "" => None,
        raw => Some(
            raw.parse::<AgentId>()
                .map_err(|_| ApiError::BadRequest(format!("`{raw}` is not an agent id")))?,
        ),
    };
    let kind = match q.kind.as_str() {
        "" => None,
        raw => Some(
            EventType::parse(raw)
                .ok_or_else(|| ApiError::BadRequest(format!("`{raw}` is not an event type")))?,
        ),
    };
    let filter = AuditFilter {
        agent,
        kind,
        after_seq: q.after,
        since: since(&q.since)?,
        limit: PAGE,
    };
    let events = crate::access::audit_events(&state, &s.principal, filter).await?;
    let next = (events.len() == PAGE as usize)
        .then(|| events.last().map(|e| e.seq))
        .flatten()
        .map(|last| {
            let mut query = vec![format!("after={last}")];
            for (k, v) in [("agent", &q.agent), ("type", &q.kind), ("since", &q.since)] {
                if !v.is_empty() {
                    query.push(format!(
                        "{k}={}",
                        percent_encoding::utf8_percent_encode(
                            v,
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    ));
                }
            }
            format!("/console/audit?{}", query.join("&"))
        });
    let lines = events
        .iter()
        .map(|e| Line {
            seq: e.seq,
            time: when(e.body.time),
            kind: e.body.kind.as_str(),
            actor: e.body.actor.clone(),
            agent: e.body.agent.clone().unwrap_or_default(),
            summary: summary(e),
        })
        .collect();
    let chain = match AuditReader::prove(&state, s.principal.clone()) {
        Ok(reader) => {
            let v = crate::checkpoints::verify_log(reader.store(), &[]).await?;
            let cp = reader.store().latest_checkpoint().await?;
            let status = if v.ok {
                format!("intact: {} events verified", v.events)
            } else {
                format!(
                    "BROKEN: first bad record at seq {}",
                    v.first_bad_seq.unwrap_or(0)
                )
            };
            let cp = cp.map_or_else(
                || "no checkpoint yet".to_owned(),
                |cp| format!("latest checkpoint at seq {} ({})", cp.seq, when(cp.time)),
            );
            Some(format!("{status}; {cp}"))
        }
        Err(_) => None,
    };
    page(
        AuditPage {
            c: Chrome::new(&s, "audit"),
            lines,
            agent: q.agent,
            kind: q.kind,
            since: q.since,
            kinds: EventType::ALL.iter().map(|k| k.as_str()).collect(),
            next,
            chain,
        }
        .render(),
    )
}

pub async fn event(
    State(state): State<AppState>,
    s: SignedIn,
    Path(raw): Path<String>,
) -> Result<Response, ConsoleError> {
    let not_found = || ApiError::NotFound(format!("audit event `{raw}` not found"));
    let seq: u64 = raw.parse().map_err(|_| not_found())?;
    let filter = AuditFilter {
        agent: None,
        kind: None,
        after_seq: seq.checked_sub(1),
        since: None,
        limit: 1,
    };
    let e = crate::access::audit_events(&state, &s.principal, filter)
        .await?
        .into_iter()
        .find(|e| e.seq == seq)
        .ok_or_else(not_found)?;
    page(
        EventPage {
            c: Chrome::new(&s, "audit"),
            seq,
            body: serde_json::to_string_pretty(&e.body).unwrap_or_default(),
            hash: e.hash.clone(),
            prev_hash: e.prev_hash.clone(),
        }
        .render(),
    )
}
