//! The fleet's posture (`/console/posture`): open findings of every agent
//! the principal may see, with severity and remediation, and four charts
//! drawn on the server (`crate::charts`) from the compliance report's
//! evidence. Charts are served as SVG documents from `/console/charts/…`
//! and shown with `<img>`, so the page's CSP needs no inline style.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bridle_core::engine::AgentState;

use super::{Chrome, ConsoleError, SignedIn, when};
use crate::charts;
use crate::error::ApiError;
use crate::service::findings::FindingCode;
use crate::state::AppState;
use crate::views::report::ComplianceReport;

struct Finding {
    agent: String,
    severity: String,
    title: String,
    detail: String,
    remediation: String,
    opened: String,
}

#[derive(Template)]
#[template(path = "console/posture.html")]
struct PosturePage {
    c: Chrome,
    findings: Vec<Finding>,
    charts: Vec<(&'static str, &'static str)>,
}

const CHARTS: [(&str, &str); 4] = [
    ("activity", "Decisions per day"),
    ("outcomes", "Decisions by outcome"),
    ("denials", "Denials by reason"),
    ("latency", "Approval latency"),
];

async fn page_findings(state: &AppState, s: &SignedIn) -> Result<Vec<Finding>, ConsoleError> {
    let mut out = Vec::new();
    for row in crate::access::agents(state, &s.principal).await? {
        for f in crate::service::findings::open(state, &row.id).await? {
            let code = FindingCode::ALL.into_iter().find(|c| c.as_str() == f.code);
            out.push(Finding {
                agent: row.id.to_string(),
                severity: f.severity.clone(),
                title: code.map_or_else(|| f.code.clone(), |c| c.title().to_owned()),
                detail: f.detail.clone(),
                remediation: code.map_or("", |c| c.remediation()).to_owned(),
                opened: when(f.opened_at),
            });
        }
    }
    Ok(out)
}

pub async fn page(State(state): State<AppState>, s: SignedIn) -> Result<Response, ConsoleError> {
    let findings = page_findings(&state, &s).await?;
    super::page(
        PosturePage {
            c: Chrome::new(&s, "posture"),
            findings,
            charts: CHARTS.to_vec(),
        }
        .render(),
    )
}

/// The compliance report's evidence over the agents `s` may see, last 30 days.
async fn report(state: &AppState, s: &SignedIn) -> Result<ComplianceReport, ConsoleError> {
    let mut rows = crate::access::agents(state, &s.principal).await?;
    rows.retain(|r| r.state != AgentState::Retired);
    let window = ("30d".to_owned(), jiff::SignedDuration::from_hours(24 * 30));
    Ok(
        crate::service::report::compliance(state, &rows, window, jiff::Timestamp::now())
            .await?
            .into(),
    )
}

fn counts(maps: impl Iterator<Item = BTreeMap<String, i64>>) -> Vec<(String, f64)> {
    let mut sum: BTreeMap<String, i64> = BTreeMap::new();
    for m in maps {
        for (k, v) in m {
            *sum.entry(k).or_default() += v;
        }
    }
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    sum.into_iter().map(|(k, v)| (k, v as f64)).collect()
}

#[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
fn draw(name: &str, r: &ComplianceReport) -> Result<Option<String>, ConsoleError> {
    let internal = |e: charts::ChartError| ConsoleError::from(ApiError::Internal(e.to_string()));
    let evidence = r.agents.iter().map(|a| &a.evidence);
    match name {
        "activity" => {
            let mut days: BTreeMap<String, [i64; 3]> = BTreeMap::new();
            for e in evidence {
                for d in &e.activity {
                    let day = days.entry(d.date.clone()).or_default();
                    day[0] += d.allow;
                    day[1] += d.deny;
                    day[2] += d.approval_required;
                }
            }
            let labels: Vec<String> = days.keys().cloned().collect();
            let series: Vec<(&str, Vec<f64>)> = ["allow", "deny", "approval_required"]
                .iter()
                .zip(0..3)
                .map(|(n, i)| {
                    let values = days
                        .values()
                        .map(|d| d.get(i).copied().unwrap_or(0) as f64)
                        .collect();
                    (*n, values)
                })
                .collect();
            charts::stacked_bars("Decisions per day", &labels, &series).map_err(internal)
        }
        "outcomes" => charts::bars(
            "Decisions by outcome",
            "decisions",
            &counts(evidence.map(|e| e.decisions.clone())),
        )
        .map_err(internal),
        "denials" => charts::ranked_bars(
            "Denials by reason",
            "denials",
            &counts(evidence.map(|e| e.denials.clone())),
        )
        .map_err(internal),
        "latency" => {
            let mut buckets: Vec<(String, f64)> = Vec::new();
            for e in evidence {
                for b in &e.approvals.latency_histogram {
                    match buckets.iter_mut().find(|(k, _)| k == b.bucket) {
                        Some((_, n)) => *n += b.count as f64,
                        None => buckets.push((b.bucket.to_owned(), b.count as f64)),
                    }
                }
            }
            charts::bars("Approval latency", "approvals", &buckets).map_err(internal)
        }
        _ => Err(ApiError::NotFound("no such chart".into()).into()),
    }
}

/// The four charts of one principal, drawn from one report, for the
/// minute they were drawn in: the page's four `<img>` requests (and any
/// reload within the minute) build the report once. Keyed by the principal,
/// so each sees only its own agents' figures.
#[derive(Debug)]
pub struct ChartCache(quick_cache::sync::Cache<(String, i64), Arc<[String; 4]>>);

impl Default for ChartCache {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::new(256))
    }
}

const EMPTY: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"60\">\
     <text x=\"10\" y=\"35\" font-family=\"sans-serif\" font-size=\"16\">Nothing to show in the last 30 days</text></svg>";

async fn draw_all(state: &AppState, s: &SignedIn) -> Result<Arc<[String; 4]>, ConsoleError> {
    let r = report(state, s).await?;
    let mut out: [String; 4] = Default::default();
    for (slot, (name, _)) in out.iter_mut().zip(CHARTS) {
        *slot = draw(name, &r)?.unwrap_or_else(|| EMPTY.to_owned());
    }
    Ok(Arc::new(out))
}

/// One chart as an SVG document (an empty chart says so in words).
pub async fn chart(
    State(state): State<AppState>,
    s: SignedIn,
    Path(name): Path<String>,
) -> Result<Response, ConsoleError> {
    let at = name
        .strip_suffix(".svg")
        .and_then(|n| CHARTS.iter().position(|(c, _)| *c == n))
        .ok_or_else(|| ConsoleError::from(ApiError::NotFound("no such chart".into())))?;
    let minute = jiff::Timestamp::now().as_second().div_euclid(60);
    let key = (s.principal.id.to_string(), minute);
    let drawn = state
        .charts
        .0
        .get_or_insert_async(&key, draw_all(&state, &s))
        .await?;
    let svg = drawn.get(at).cloned().unwrap_or_default();
    let mut response = ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(super::SVG_CSP),
    );
    Ok(response)
}
