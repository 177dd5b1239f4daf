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
pub mod history;
pub mod keys;
pub mod metrics;
pub mod oauth;
pub mod principals;
pub mod reachable;
pub mod replay;
pub mod reports;
pub mod usage;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{any, get, post, put};

use crate::error::ApiError;
use crate::state::AppState;

/// Declares every route once: the router is built from this list, and the
/// same list is [`ROUTES`], which the authorization matrix test walks, so a
/// new endpoint cannot escape it.
macro_rules! routes {
    ($($method:ident $path:literal => $handler:expr),* $(,)?) => {
        /// Every route of the API as `(method, path)` in axum's syntax
        /// (`any` for every method), in the order the router adds them.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn add_routes(router: Router<AppState>) -> Router<AppState> {
            router$(.route($path, $method($handler)))*
        }
    };
}

routes! {
    get "/healthz" => health,
    get "/readyz" => ready,
    get "/openapi.json" => crate::openapi::serve,
    get "/schemas/manifest-v1.json" => manifest_schema,
    get "/.well-known/oauth-authorization-server" => oauth::metadata,
    get "/.well-known/jwks.json" => oauth::jwks,
    get "/oauth/authorize" => oauth::authorize::authorize,
    post "/oauth/token" => oauth::grants::token,
    post "/oauth/introspect" => oauth::introspect::introspect,
    post "/oauth/revoke" => oauth::introspect::revoke,
    get "/v1/keys" => keys::list,
    post "/v1/keys/rotate" => keys::rotate,
    post "/v1/principals" => principals::create,
    post "/v1/principals/{id}/deactivate" => principals::deactivate,
    get "/v1/agents" => agents::list,
    put "/v1/agents/{id}" => agents::apply,
    get "/v1/agents/{id}" => agents::show,
    post "/v1/agents/{id}/suspend" => agents::suspend,
    post "/v1/agents/{id}/resume" => agents::resume,
    post "/v1/agents/{id}/retire" => agents::retire,
    post "/v1/agents/{id}/review" => agents::review,
    get "/v1/agents/{id}/versions" => history::versions,
    get "/v1/agents/{id}/versions/{version}" => history::version,
    get "/v1/agents/{id}/diff" => history::diff,
    get "/v1/agents/{id}/usage" => usage::usage,
    get "/v1/agents/{id}/suggestion" => usage::suggestion,
    post "/v1/agents/{id}/replay" => replay::replay,
    post "/v1/agents/{id}/credentials" => credentials::create,
    get "/v1/agents/{id}/credentials" => credentials::list,
    post "/v1/agents/{id}/credentials/{client_id}/rotate" => credentials::rotate,
    post "/v1/agents/{id}/credentials/{client_id}/revoke" => credentials::revoke,
    post "/v1/agents/{id}/elevations" => elevations::request,
    get "/v1/agents/{id}/elevations" => elevations::list,
    post "/v1/agents/{id}/elevations/{elevation_id}/end" => elevations::end,
    post "/v1/decisions" => decisions::decide,
    post "/v1/decisions/reachable" => reachable::reachable,
    post "/v1/decisions/{id}/outcome" => decisions::outcome,
    any "/ext_authz" => ext_authz::check,
    any "/ext_authz/{*path}" => ext_authz::check,
    get "/v1/approvals" => approvals::list,
    get "/v1/approvals/{id}" => approvals::show,
    get "/v1/approvals/{id}/wait" => approval_wait::wait,
    post "/v1/approvals/{id}/approve" => approvals::approve,
    post "/v1/approvals/{id}/deny" => approvals::deny,
    get "/v1/audit" => audit::list,
    get "/v1/audit/verify" => audit::verify,
    get "/v1/audit/checkpoints" => audit::checkpoints,
    get "/v1/findings" => findings::list,
    get "/v1/reports/compliance" => reports::compliance,
    get "/metrics" => metrics::scrape,
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    add_routes(Router::new())
        .merge(crate::console::router())
        .fallback(not_found)
        // After every route: a known path with another method is a 405 problem.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_store_errors,
        ))
        .layer(axum::middleware::from_fn(crate::telemetry::http_span))
        .with_state(state)
}

/// Counts the answers that are 503 in `bridle_store_errors_total`: every
/// one is `ApiError::Unavailable` (problem+json, or `temporarily_unavailable`
/// in the OAuth error format), the store or the audit log failing.
async fn count_store_errors(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = next.run(request).await;
    if response.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE {
        state.metrics.store_error();
    }
    response
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// 200 when an audit record reaches the disk (what every decision needs);
/// 503 otherwise (a full disk, a read-only file system, a failing write).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "health",
    security(()),
    responses(
        (status = 200, description = "An audit append reaches the disk", body = Health),
        (status = 503, response = crate::openapi::Unavailable),
    ),
)]
async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    crate::service::health::healthy(&state)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(Health { status: "ok" }))
}

/// 200 when the server is ready to take traffic: the store answers with
/// every migration applied, the signing keys are loaded; 503 otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "ready",
    security(()),
    responses(
        (status = 200, description = "Ready to take traffic", body = Health),
        (status = 503, response = crate::openapi::Unavailable),
    ),
)]
async fn ready(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    crate::service::health::ready(&state)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(Health { status: "ok" }))
}

/// The manifest's JSON Schema, generated once from the core's types.
static MANIFEST_SCHEMA: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(bridle_core::manifest::schema::json_schema_text);

/// The JSON Schema (draft 2020-12) of manifest format v1, for editors (the
/// YAML language server's `$schema=` line) and CI checks.
#[utoipa::path(
    get,
    path = "/schemas/manifest-v1.json",
    tag = "health",
    operation_id = "manifest_schema",
    security(()),
    responses(
        (status = 200, description = "The JSON Schema of manifest format v1", body = Object, content_type = "application/schema+json"),
    ),
)]
pub(crate) async fn manifest_schema() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/schema+json")],
        MANIFEST_SCHEMA.clone(),
    )
        .into_response()
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
