//! One error type for the API, rendered as `application/problem+json`
//! (RFC 9457). A 5xx body says "internal error" and a request id, nothing
//! more; the detail goes to the log under that id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bridle_core::ManifestErrors;
use bridle_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// One validation error: where (`tools[1].args.amount.max`) and what, with
/// the YAML position when known.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    pub path: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A request that is not ambiguous-free or well-formed, with the places
    /// named (400): duplicate JSON keys, out-of-range numbers, a resource
    /// outside the grammar.
    #[error("{detail}")]
    Malformed {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("{detail}")]
    Invalid {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("this endpoint does not accept that method")]
    MethodNotAllowed,
    /// Too many failed authentications from this source or for this
    /// credential ([`crate::throttle`]).
    #[error("too many failed authentications; retry after {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    #[error("service unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Serialize, ToSchema)]
pub(crate) struct Problem<'a> {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    #[schema(example = "https://bridle.dev/problems/not-found")]
    kind: &'a str,
    title: &'a str,
    /// The HTTP status code.
    status: u16,
    detail: String,
    /// Where the request is wrong: validation errors (422) and malformed
    /// input (400).
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl ApiError {
    pub fn invalid(detail: impl Into<String>, path: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            detail: detail.into(),
            errors: vec![FieldError {
                path: path.to_owned(),
                message: message.into(),
                line: None,
                column: None,
            }],
        }
    }

    /// A 400 naming one place (`resource`, `args.vendor`).
    pub fn malformed(detail: impl Into<String>, path: &str, message: impl Into<String>) -> Self {
        Self::Malformed {
            detail: detail.into(),
            errors: vec![FieldError {
                path: path.to_owned(),
                message: message.into(),
                line: None,
                column: None,
            }],
        }
    }

    /// The HTTP status this error is answered with.
    pub(crate) fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The status line's title (`Not found`).
    pub(crate) fn title(&self) -> &'static str {
        self.parts().2
    }

    /// What the caller is told: for a 5xx only a request id (the detail is
    /// logged under it), otherwise the message.
    pub(crate) fn public_detail(&self) -> String {
        match self {
            Self::Internal(internal) => {
                let id = logged(internal);
                format!("internal error (request id {id})")
            }
            Self::Unavailable(internal) => {
                let id = logged(internal);
                format!("temporarily unavailable; denied to be safe (request id {id})")
            }
            Self::Unauthenticated(why) => why.clone(),
            other => other.to_string(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::BadRequest(_) | Self::Malformed { .. } => {
                (StatusCode::BAD_REQUEST, "bad-request", "Bad request")
            }
            Self::Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Unauthenticated",
            ),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::Invalid { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "Invalid request",
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Payload too large",
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Self::TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many requests",
            ),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }
}

impl From<ManifestErrors> for ApiError {
    fn from(e: ManifestErrors) -> Self {
        let n = e.errors.len();
        Self::Invalid {
            detail: format!(
                "the manifest has {n} error{}",
                if n == 1 { "" } else { "s" }
            ),
            errors: e
                .errors
                .into_iter()
                .map(|e| FieldError {
                    path: e.path,
                    message: e.message,
                    line: Some(e.line),
                    column: Some(e.column),
                })
                .collect(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::Conflict(what),
            StoreError::NotFound(what) => Self::NotFound(format!("`{what}` not found")),
            StoreError::AuditUnavailable => {
                Self::Unavailable("the audit log cannot be written".into())
            }
            StoreError::Database(_) => Self::Unavailable(e.to_string()),
            StoreError::Migrate(_) | StoreError::Config(_) | StoreError::Corrupt(_) => {
                Self::Internal(e.to_string())
            }
        }
    }
}

impl From<crate::service::ServiceError> for ApiError {
    fn from(e: crate::service::ServiceError) -> Self {
        use crate::service::ServiceError;
        match e {
            ServiceError::Store(e) => e.into(),
            ServiceError::DecisionNotFound(_) | ServiceError::VersionNotFound(_) => {
                Self::NotFound(e.to_string())
            }
            ServiceError::NotFound(what) => Self::NotFound(what),
            ServiceError::Invalid {
                title,
                field,
                detail,
            } => Self::invalid(title, field, detail),
            ServiceError::Refused(why) => Self::Forbidden(why),
            ServiceError::Conflict(why) => Self::Conflict(why),
            ServiceError::Mismatch(why) => Self::BadRequest(why),
            ServiceError::Manifest(errors) => errors.into(),
            ServiceError::OwnerInactive(_) => Self::invalid(
                "the manifest's owner is not an active principal",
                "owner",
                e.to_string(),
            ),
            ServiceError::StoredManifest { .. }
            | ServiceError::Compile(_)
            | ServiceError::Id(_)
            | ServiceError::Internal(_)
            | ServiceError::Task(_) => Self::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.parts();
        let detail = self.public_detail();
        let errors = match &self {
            Self::Invalid { errors, .. } | Self::Malformed { errors, .. } => {
                Some(errors.as_slice())
            }
            _ => None,
        };
        let body = Problem {
            kind: &format!("https://bridle.dev/problems/{kind}"),
            title,
            status: status.as_u16(),
            detail,
            errors,
        };
        let mut response =
            (status, serde_json::to_string(&body).unwrap_or_default()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::TooManyRequests { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

/// Log the detail of a 5xx under a fresh request id, and return the id.
pub(crate) fn logged(internal: &str) -> String {
    let id = request_id();
    tracing::error!(request_id = %id, error = %internal, "request failed");
    id
}

fn request_id() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}
