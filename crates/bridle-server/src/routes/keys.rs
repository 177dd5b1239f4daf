//! `/v1/keys`: the token signing keys (admin). Rotation makes a new key sign
//! every token from now on; the old one stays in JWKS and keeps verifying
//! until the last token it signed has expired.

use axum::Json;
use axum::extract::State;
use bridle_store::CredentialStore;
use serde::Serialize;
use utoipa::ToSchema;

use crate::capability::Admin;
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::AppState;
use crate::tokens::RETIRED_KEY_KEPT;
use crate::views::time::instant;

/// A signing key, public facts only.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfo {
    kid: String,
    state: KeyState,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    retired_at: Option<String>,
    /// When a retiring key leaves JWKS.
    #[serde(skip_serializing_if = "Option::is_none")]
    published_until: Option<String>,
}

/// `current` (signs new tokens), `retiring` (verifies tokens it signed
/// until they expire; still in JWKS) or `retired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Current,
    Retiring,
    Retired,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    keys: Vec<KeyInfo>,
}

async fn key_list(state: &AppState, admin: &Admin) -> Result<KeyList, ApiError> {
    let now = jiff::Timestamp::now();
    let current = state.keys().current_kid().to_owned();
    let mut keys = Vec::new();
    for k in admin.store().signing_keys().await? {
        let until = k.retired_at.map(|at| at + RETIRED_KEY_KEPT);
        let key_state = match until {
            _ if k.kid.as_str() == current => KeyState::Current,
            None => KeyState::Current,
            Some(until) if until > now => KeyState::Retiring,
            Some(_) => KeyState::Retired,
        };
        keys.push(KeyInfo {
            kid: k.kid.into_string(),
            state: key_state,
            created_at: instant(k.created_at),
            retired_at: k.retired_at.map(instant),
            published_until: until.filter(|u| *u > now).map(instant),
        });
    }
    Ok(KeyList { keys })
}

/// The signing keys, newest first (admin).
#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "oauth",
    operation_id = "list_keys",
    responses(
        (status = 200, description = "The signing keys", body = KeyList),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn list(State(state): State<AppState>, admin: Admin) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(key_list(&state, &admin).await?))
}

/// Rotate the token signing key (admin).
#[utoipa::path(
    post,
    path = "/v1/keys/rotate",
    tag = "oauth",
    operation_id = "rotate_keys",
    responses(
        (status = 200, description = "Rotated: the new key is `current`", body = KeyList),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 503, response = doc::Unavailable),
    ),
)]
pub async fn rotate(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Json<KeyList>, ApiError> {
    crate::service::principals::rotate_keys(&state, &admin).await?;
    Ok(Json(key_list(&state, &admin).await?))
}
