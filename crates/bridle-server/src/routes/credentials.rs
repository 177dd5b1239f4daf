//! `/v1/agents/{id}/credentials`: an agent's OAuth clients. A client
//! authenticates with a secret (shown once, stored hashed, rotated with an
//! overlap window) or with a registered public key (`private_key_jwt`,
//! RFC 7523), so no secret exists at all.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bridle_core::id::AgentId;
use bridle_core::manifest::units::parse_duration;
use bridle_store::{ClientAuth, CredentialRow};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::capability::OwnerOf;
use crate::error::ApiError;
use crate::jose::PublicKey;
use crate::json::StrictJson;
use crate::openapi as doc;
use crate::path::{IdPath, IdRejection};
use crate::service::credentials;
use crate::state::AppState;
use crate::views::time::instant;

/// Longest overlap a rotated secret may keep working.
const MAX_OVERLAP: SignedDuration = SignedDuration::from_hours(7 * 24);
/// The overlap when the request names none.
const DEFAULT_OVERLAP: &str = "1h";

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    /// A public JWK (OKP Ed25519, EC P-256/P-384, or RSA ≥ 2048 bits): the
    /// client then authenticates with `private_key_jwt` and gets no secret.
    #[schema(value_type = Option<Object>)]
    jwk: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialCreated {
    client_id: String,
    /// Shown once; only its hash is stored. Absent for `private_key_jwt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    /// `client_secret_basic` (or `_post`), or `private_key_jwt`.
    #[schema(example = "client_secret_basic")]
    token_endpoint_auth_method: &'static str,
    /// RFC 7638 thumbprint of the registered key (`private_key_jwt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    jwk_thumbprint: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// How long the previous secret keeps working (`0s` to `7d`; default `1h`).
    #[schema(example = "1h")]
    overlap: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rotated {
    client_id: String,
    /// The new secret, shown once.
    client_secret: String,
    /// When the previous secret stops working; absent when at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret_expires_at: Option<String>,
}

/// One credential, without any secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialInfo {
    client_id: String,
    #[schema(example = "client_secret_basic")]
    token_endpoint_auth_method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwk_thumbprint: Option<String>,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotated_at: Option<String>,
    /// While a rotation overlap lasts: when the previous secret stops working.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialList {
    credentials: Vec<CredentialInfo>,
}

fn info(row: CredentialRow) -> CredentialInfo {
    let now = Timestamp::now();
    let (method, jwk_thumbprint, previous) = match row.auth {
        ClientAuth::Secret { previous, .. } => (
            "client_secret_basic",
            None,
            previous
                .map(|(_, until)| until)
                .filter(|until| *until > now)
                .map(instant),
        ),
        ClientAuth::PublicJwk(jwk) => (
            "private_key_jwt",
            serde_json::from_str(&jwk)
                .ok()
                .and_then(|v| PublicKey::from_json(&v).ok())
                .map(|k| k.thumbprint),
            None,
        ),
    };
    CredentialInfo {
        client_id: row.client_id.into_string(),
        token_endpoint_auth_method: method,
        jwk_thumbprint,
        created_at: instant(row.created_at),
        rotated_at: row.rotated_at.map(instant),
        previous_secret_expires_at: previous,
        revoked_at: row.revoked_at.map(instant),
    }
}

/// Create an OAuth client credential for the agent (admin or owner): a
/// secret, or with `jwk` a registered public key for `private_key_jwt`.
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/credentials",
    tag = "agents",
    operation_id = "create_agent_credentials",
    params(("id" = String, Path, description = "The agent's id")),
    request_body = Option<NewCredential>,
    responses(
        (status = 201, description = "Created; a secret is shown once", body = CredentialCreated),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    owner: Result<OwnerOf, ApiError>,
    body: Result<Option<StrictJson<NewCredential>>, ApiError>,
) -> Result<(StatusCode, Json<CredentialCreated>), ApiError> {
    let body = body?.map(|b| b.0).unwrap_or_default();
    let owner = owner?;
    let issued = credentials::issue(&state, &owner, body.jwk.as_ref()).await?;
    let created = CredentialCreated {
        token_endpoint_auth_method: issued.method(),
        client_id: issued.client_id.into_string(),
        client_secret: issued.secret,
        jwk_thumbprint: issued.thumbprint,
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// The agent's credentials, without secrets (whoever may read the agent's
/// record: admin, auditor, owner; 404 for anyone else).
#[utoipa::path(
    get,
    path = "/v1/agents/{id}/credentials",
    tag = "agents",
    operation_id = "list_agent_credentials",
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "The agent's credentials", body = CredentialList),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<IdPath<AgentId>, IdRejection>,
) -> Result<Json<CredentialList>, ApiError> {
    // The caller's kind is checked before the id (`principal_agent`).
    caller.require_principal()?;
    let IdPath(id) = id?;
    let credentials = crate::access::credentials(&state, &caller, &id).await?;
    Ok(Json(CredentialList {
        credentials: credentials.into_iter().map(info).collect(),
    }))
}

/// Give a secret credential a new secret; the previous one keeps working
/// for the overlap, so clients can be updated without downtime.
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/credentials/{client_id}/rotate",
    tag = "agents",
    operation_id = "rotate_agent_credentials",
    params(
        ("id" = String, Path, description = "The agent's id"),
        ("client_id" = String, Path, description = "The credential's client id"),
    ),
    request_body = Option<Rotation>,
    responses(
        (status = 200, description = "Rotated; the new secret is shown once", body = Rotated),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 422, response = doc::Invalid),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn rotate(
    State(state): State<AppState>,
    owner: Result<OwnerOf, ApiError>,
    Path((_agent, client_id)): Path<(String, String)>,
    body: Result<Option<StrictJson<Rotation>>, ApiError>,
) -> Result<Json<Rotated>, ApiError> {
    let body = body?.map(|b| b.0).unwrap_or_default();
    let overlap_text = body.overlap.as_deref().unwrap_or(DEFAULT_OVERLAP);
    let overlap = if matches!(overlap_text, "0" | "0s") {
        SignedDuration::ZERO
    } else {
        parse_duration(overlap_text)
            .map_err(|e| ApiError::invalid("invalid overlap", "overlap", e.to_string()))?
    };
    if overlap > MAX_OVERLAP {
        return Err(ApiError::invalid(
            "invalid overlap",
            "overlap",
            "at most `7d`",
        ));
    }
    let owner = owner?;
    let rotated = credentials::rotate(&state, &owner, &client_id, overlap).await?;
    Ok(Json(Rotated {
        client_id,
        client_secret: rotated.secret,
        previous_secret_expires_at: rotated.previous_until.map(instant),
    }))
}

/// Revoke a credential and every token issued to it, with the tokens
/// exchanged from those (admin or owner).
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/credentials/{client_id}/revoke",
    tag = "agents",
    operation_id = "revoke_agent_credentials",
    params(
        ("id" = String, Path, description = "The agent's id"),
        ("client_id" = String, Path, description = "The credential's client id"),
    ),
    responses(
        (status = 200, description = "Revoked", body = CredentialInfo),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 409, response = doc::Conflict),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    owner: OwnerOf,
    Path((_agent, client_id)): Path<(String, String)>,
) -> Result<Json<CredentialInfo>, ApiError> {
    let cred = credentials::revoke(&state, &owner, &client_id).await?;
    Ok(Json(info(cred)))
}
