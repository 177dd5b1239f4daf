//! The router: every endpoint of the API contract and where it lives.

pub mod agents;
pub mod approval_wait;
pub mod approvals;
pub mod audit;
pub mod credentials;
pub mod decisions;
pub mod elevations;
pub mod ext_authz;
pub mod findings;
pub mod keys;
pub mod oauth;
pub mod principals;
pub mod reachable;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{any, get, post, put};
use bridle_store::AuditRead;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    Router::new()
        .route("/healthz", get(health))
        .route("/openapi.json", get(crate::openapi::serve))
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata),
        )
        .route("/.well-known/jwks.json", get(oauth::jwks))
        .route("/oauth/token", post(oauth::grants::token))
        .route("/oauth/introspect", post(oauth::introspect::introspect))
        .route("/oauth/revoke", post(oauth::introspect::revoke))
        .route("/v1/keys", get(keys::list))
        .route("/v1/keys/rotate", post(keys::rotate))
        .route("/v1/principals", post(principals::create))
        .route(
            "/v1/principals/{id}/deactivate",
            post(principals::deactivate),
        )
        .route("/v1/agents", get(agents::list))
        .route("/v1/agents/{id}", put(agents::apply).get(agents::show))
        .route("/v1/agents/{id}/suspend", post(agents::suspend))
        .route("/v1/agents/{id}/resume", post(agents::resume))
        .route("/v1/agents/{id}/retire", post(agents::retire))
        .route("/v1/agents/{id}/review", post(agents::review))
        .route(
            "/v1/agents/{id}/credentials",
            post(credentials::create).get(credentials::list),
        )
        .route(
            "/v1/agents/{id}/credentials/{client_id}/rotate",
            post(credentials::rotate),
        )
        .route(
            "/v1/agents/{id}/credentials/{client_id}/revoke",
            post(credentials::revoke),
        )
        .route("/v1/agents/{id}/elevations", post(elevations::request))
        .route("/v1/decisions", post(decisions::decide))
        .route("/v1/decisions/reachable", post(reachable::reachable))
        .route("/v1/decisions/{id}/outcome", post(decisions::outcome))
        .route("/ext_authz", any(ext_authz::check))
        .route("/ext_authz/{*path}", any(ext_authz::check))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/approvals/{id}", get(approvals::show))
        .route("/v1/approvals/{id}/wait", get(approval_wait::wait))
        .route("/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/v1/approvals/{id}/deny", post(approvals::deny))
        .route("/v1/audit", get(audit::list))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/audit/checkpoints", get(audit::checkpoints))
        .route("/v1/findings", get(findings::list))
        .fallback(not_found)
        // After every route: a known path with another method is a 405 problem.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// 200 when the store and the audit log accept writes; 503 otherwise.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "health",
    security(()),
    responses(
        (status = 200, description = "The store and the audit log are writable", body = Health),
        (status = 503, response = crate::openapi::Unavailable),
    ),
)]
async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state
        .store
        .check_writable()
        .await
        .map_err(|e| ApiError::Unavailable(format!("store not writable: {e}")))?;
    let head = state
        .store
        .audit_events(&bridle_store::AuditFilter {
            limit: 1,
            ..Default::default()
        })
        .await;
    head.map_err(|e| ApiError::Unavailable(format!("audit log unreadable: {e}")))?;
    Ok(Json(Health { status: "ok" }))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// A query string that did not parse: 400 problem+json with the reason.
pub(crate) fn query_error(e: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::BadRequest(format!("invalid query string: {}", e.body_text()))
}
