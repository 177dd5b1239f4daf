//! `GET /metrics`: the server's Prometheus metrics ([`crate::metrics`]),
//! for `admin`, `auditor` or the configured metrics token.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bridle_store::ApprovalStore as _;

use crate::capability::MetricsReader;
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::AppState;

/// The server's metrics, in the Prometheus text format (0.0.4).
///
/// Decisions by effect and reason, decision and audit latency, audit batch
/// sizes, pending approvals and their age, tokens issued and refused, cache
/// hits and misses, store errors. For `admin`, `auditor`, or the bearer
/// token set as `metrics_token` (`BRIDLE_METRICS_TOKEN`); never an agent.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "metrics",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Every metric, in the Prometheus text exposition format 0.0.4", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn scrape(
    State(state): State<AppState>,
    reader: MetricsReader,
) -> Result<Response, ApiError> {
    let now = jiff::Timestamp::now();
    let pending = reader.store().pending_approvals(now).await?;
    state.metrics.set_pending(&pending, now);
    let text = state
        .metrics
        .encode()
        .map_err(|e| ApiError::Internal(format!("encoding the metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}
