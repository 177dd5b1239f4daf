//! Ids in the path. [`IdPath<T>`] is the route's `{id}` parsed as `T`
//! (`IdPath<AgentId>` for `/v1/agents/{id}/…`), so a handler receives a typed
//! id and never parses one. An `{id}` that cannot be a `T` names nothing: it
//! is answered exactly as an unknown one (404 problem+json, `agent `x` not
//! found`), where axum's own `Path<T>` would answer 400 in plain text.
//!
//! A handler that must check something else first (its body, the caller's
//! kind) takes `Result<IdPath<T>, IdRejection>` and answers the error where
//! it used to look the id up, so the order of its answers is unchanged.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bridle_core::id::{AgentId, ApprovalId, DecisionId, PrincipalId};

use crate::error::ApiError;

/// Why the route's `{id}` is not a `T`.
#[derive(Debug)]
pub enum IdRejection {
    /// The path could not be read (a capture that is not UTF-8): 400.
    Unreadable(String),
    /// `raw` is not a valid id (`reason` says why): answered as `answer`,
    /// the not-found of an unknown id.
    Invalid {
        raw: String,
        reason: String,
        answer: ApiError,
    },
}

impl From<IdRejection> for ApiError {
    fn from(r: IdRejection) -> Self {
        match r {
            IdRejection::Unreadable(text) => Self::BadRequest(text),
            IdRejection::Invalid { answer, .. } => answer,
        }
    }
}

impl IntoResponse for IdRejection {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

/// The route's `{id}`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPath<T>(pub T);

/// An id type that names a resource in the path.
pub trait PathId: std::str::FromStr {
    /// The answer for an `{id}` that names no such resource.
    fn not_found(raw: &str) -> ApiError;
}

impl PathId for AgentId {
    fn not_found(raw: &str) -> ApiError {
        ApiError::NotFound(format!("agent `{raw}` not found"))
    }
}

impl PathId for ApprovalId {
    fn not_found(raw: &str) -> ApiError {
        ApiError::NotFound(format!("approval `{raw}` not found"))
    }
}

impl PathId for DecisionId {
    fn not_found(raw: &str) -> ApiError {
        ApiError::NotFound(format!("decision `{raw}` not found"))
    }
}

impl PathId for PrincipalId {
    fn not_found(raw: &str) -> ApiError {
        ApiError::NotFound(format!("principal `{raw}` not found"))
    }
}

impl<S, T> FromRequestParts<S> for IdPath<T>
where
    S: Send + Sync,
    T: PathId + Send,
    T::Err: std::fmt::Display,
{
    type Rejection = IdRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, IdRejection> {
        // Every capture, so routes with a second one (`{client_id}`) work too.
        let Path(captures) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| IdRejection::Unreadable(e.body_text()))?;
        // Every route this extractor serves has an `{id}`; were one without
        // it, the empty id would name nothing.
        let raw = captures
            .into_iter()
            .find_map(|(name, value)| (name == "id").then_some(value))
            .unwrap_or_default();
        match raw.parse() {
            Ok(id) => Ok(Self(id)),
            Err(e) => Err(IdRejection::Invalid {
                reason: e.to_string(),
                answer: T::not_found(&raw),
                raw,
            }),
        }
    }
}
