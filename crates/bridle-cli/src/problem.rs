//! RFC 9457 problem details as Bridle answers errors, and how the CLI
//! prints them.

use std::fmt;

use reqwest::StatusCode;
use serde::Deserialize;

/// An RFC 9457 problem as Bridle sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Problem {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub errors: Vec<FieldError>,
    /// Added by the client, e.g. when a 401 came back and no token was given.
    #[serde(skip)]
    pub hint: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct FieldError {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub line: Option<usize>,
    #[serde(default)]
    pub column: Option<usize>,
}

impl Problem {
    /// Read a non-2xx answer. A body that is not problem+json (a proxy's HTML
    /// page, say) still gives the status and the first line of the body.
    pub(crate) fn from_response(status: StatusCode, body: &str) -> Self {
        let mut p = serde_json::from_str::<Problem>(body).unwrap_or_else(|_| Problem {
            title: String::new(),
            status: status.as_u16(),
            detail: body
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("")
                .chars()
                .take(200)
                .collect(),
            errors: Vec::new(),
            hint: None,
        });
        // An OAuth endpoint's error (RFC 6749 §5.2) is `{error,
        // error_description?}`, not a problem document.
        if p.title.is_empty()
            && p.detail.is_empty()
            && let Ok(oauth) = serde_json::from_str::<OAuthError>(body)
        {
            p.detail = match oauth.error_description {
                Some(d) if !d.is_empty() => format!("{}: {d}", oauth.error),
                _ => oauth.error,
            };
        }
        if p.status == 0 {
            p.status = status.as_u16();
        }
        if p.title.is_empty() {
            p.title = status.canonical_reason().unwrap_or("Error").to_owned();
        }
        p
    }

    /// `<status> <title>: <detail>` and one indented line per field error.
    /// With `file`, positioned errors read `file:line:col: `path`: message`,
    /// as `bridle check` prints them.
    pub(crate) fn render(&self, file: Option<&str>) -> String {
        let mut out = format!("{} {}", self.status, self.title);
        if !self.detail.is_empty() {
            out.push_str(&format!(": {}", self.detail));
        }
        for e in &self.errors {
            let path = if e.path.is_empty() {
                String::new()
            } else if file.is_some() {
                format!("`{}`: ", e.path)
            } else {
                format!("{}: ", e.path)
            };
            let line = match (file, e.line, e.column) {
                (Some(f), Some(l), Some(c)) => format!("{f}:{l}:{c}: "),
                (Some(f), Some(l), None) => format!("{f}:{l}: "),
                (None, Some(l), Some(c)) => format!("line {l}:{c}: "),
                (None, Some(l), None) => format!("line {l}: "),
                _ => String::new(),
            };
            out.push_str(&format!("\n  {line}{path}{}", e.message));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("\n  hint: {hint}"));
        }
        out
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientError;

    #[test]
    fn a_problem_prints_status_title_detail_and_each_field_error() {
        let body = r#"{"type":"https://bridle.dev/problems/invalid","title":"Invalid request","status":422,
            "detail":"the manifest has 2 errors","errors":[
            {"path":"tools[1].args.amount.max","message":"expected a number","line":12,"column":9},
            {"path":"owner","message":"unknown principal `zed`"}]}"#;
        let p = Problem::from_response(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert_eq!(
            p.render(None),
            "422 Invalid request: the manifest has 2 errors\n  \
             line 12:9: tools[1].args.amount.max: expected a number\n  \
             owner: unknown principal `zed`"
        );
        assert_eq!(
            p.render(Some("bot.yaml")),
            "422 Invalid request: the manifest has 2 errors\n  \
             bot.yaml:12:9: `tools[1].args.amount.max`: expected a number\n  \
             `owner`: unknown principal `zed`"
        );
        let e = ClientError::Problem(p);
        assert!(e.to_string().starts_with("422 Invalid request: "));
    }

    #[test]
    fn an_oauth_error_keeps_its_code_and_description() {
        let p = Problem::from_response(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_client","error_description":"unknown client"}"#,
        );
        assert_eq!(
            p.render(None),
            "401 Unauthorized: invalid_client: unknown client"
        );
        let p = Problem::from_response(
            StatusCode::BAD_REQUEST,
            r#"{"error":"unauthorized_client"}"#,
        );
        assert_eq!(p.render(None), "400 Bad Request: unauthorized_client");
    }

    #[test]
    fn a_body_that_is_not_a_problem_still_gives_status_and_a_line() {
        let p = Problem::from_response(
            StatusCode::BAD_GATEWAY,
            "\n<html>upstream down</html>\nmore",
        );
        assert_eq!(
            p.render(None),
            "502 Bad Gateway: <html>upstream down</html>"
        );
        let p = Problem::from_response(StatusCode::NOT_FOUND, "");
        assert_eq!(p.render(None), "404 Not Found");
    }
}
