//! The console's own files, embedded at build time and served under a
//! name that carries their content hash, so they can be cached for a year
//! and a new build is fetched at once.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::ConsoleError;
use crate::error::ApiError;

const HTMX: &str = include_str!("../../static/htmx.min.js");
const CSS: &str = include_str!("../../static/console.css");

/// `stem-HASH.ext`, HASH the first 16 hex digits of the SHA-256 of `body`.
fn hashed(stem: &str, ext: &str, body: &str) -> String {
    let hash = crate::tokens::hash_secret(body);
    format!(
        "/console/static/{stem}-{}.{ext}",
        hash.get(..16).unwrap_or(&hash)
    )
}

static HTMX_PATH: LazyLock<String> = LazyLock::new(|| hashed("htmx-2.0.4.min", "js", HTMX));
static CSS_PATH: LazyLock<String> = LazyLock::new(|| hashed("console", "css", CSS));

pub fn htmx_path() -> &'static str {
    &HTMX_PATH
}

pub fn css_path() -> &'static str {
    &CSS_PATH
}

pub async fn serve(Path(name): Path<String>) -> Result<Response, ConsoleError> {
    let path = format!("/console/static/{name}");
    let (body, kind) = if path == *HTMX_PATH {
        (HTMX, "text/javascript; charset=utf-8")
    } else if path == *CSS_PATH {
        (CSS, "text/css; charset=utf-8")
    } else {
        return Err(ApiError::NotFound("no such file".into()).into());
    };
    let mut response = ([(header::CONTENT_TYPE, kind)], body).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(response)
}
