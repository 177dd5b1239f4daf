//! Strict JSON request bodies. serde_json keeps the last of two equal keys
//! and turns an integer no 64-bit type holds into a lossy `f64`; a body that
//! means one thing to Bridle and another to the service behind it is how a
//! policy is bypassed, so [`StrictJson`] refuses both (400, naming the
//! path) before the body is deserialised. Everything else — a body that is
//! not JSON, the wrong content type, a value that does not fit the schema,
//! a body over the limit — is rejected as before.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::error::{ApiError, FieldError};

/// At most this many problems are listed for one body.
const MAX_ERRORS: usize = 20;

/// A JSON request body with no duplicate keys and no out-of-range integers.
#[derive(Debug, Clone, Copy, Default)]
pub struct StrictJson<T>(pub T);

impl<T, S> FromRequest<S> for StrictJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(wrong_content_type());
        }
        let bytes = body(req, state).await?;
        Self::from_bytes(&bytes)
    }
}

/// Optional body: none without a `Content-Type`, as with axum's `Json`.
impl<T, S> OptionalFromRequest<S> for StrictJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        if req.headers().get(header::CONTENT_TYPE).is_none() {
            return Ok(None);
        }
        if !json_content_type(req.headers()) {
            return Err(wrong_content_type());
        }
        let bytes = body(req, state).await?;
        Self::from_bytes(&bytes).map(Some)
    }
}

impl<T: DeserializeOwned> StrictJson<T> {
    /// Check `bytes` strictly, then deserialise them as axum's `Json` does.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ApiError> {
        match check(bytes) {
            Ok(()) | Err(Strictness::Syntax) => {}
            Err(Strictness::Violations(errors)) => return Err(refused(errors)),
        }
        axum::Json::<T>::from_bytes(bytes)
            .map(|axum::Json(v)| Self(v))
            .map_err(rejection)
    }
}

/// The answer to a body that breaks the rules: 400 with every place named.
pub fn refused(errors: Vec<FieldError>) -> ApiError {
    ApiError::Malformed {
        detail: "the JSON body is ambiguous: duplicate keys or numbers no 64-bit type holds".into(),
        errors,
    }
}

async fn body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(format!("cannot read the request body: {}", e.body_text()))
        }
    })
}

fn wrong_content_type() -> ApiError {
    ApiError::BadRequest("expected `Content-Type: application/json`".into())
}

/// `application/json` or `application/<name>+json`, parameters allowed.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype
                .rsplit_once('+')
                .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json")))
}

/// A JSON body that did not deserialise: 413 when too large, else 400/422
/// with the reason.
fn rejection(e: JsonRejection) -> ApiError {
    match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => wrong_content_type(),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::invalid(
            "the request body does not match the schema",
            "",
            e.body_text(),
        ),
        _ => ApiError::BadRequest(format!("invalid JSON body: {}", e.body_text())),
    }
}

/// Why a body failed [`check`].
#[derive(Debug)]
pub enum Strictness {
    /// Not JSON at all (or nested deeper than serde_json's recursion
    /// limit): for the caller's ordinary parse to report.
    Syntax,
    /// Valid JSON that says one thing twice or holds a number that no
    /// 64-bit type holds; each with its path (`args.vendor`, `items[2]`).
    Violations(Vec<FieldError>),
}

/// Walk a JSON document once: every object's keys must be distinct (after
/// unescaping), every integer literal must fit `i64` or `u64`. Depth is
/// bounded by serde_json's recursion limit.
pub fn check(bytes: &[u8]) -> Result<(), Strictness> {
    let walk = Walk {
        wide: wide_integers(bytes),
        numbers: RefCell::new(0),
        errors: RefCell::new(Vec::new()),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Node {
        walk: &walk,
        at: &At::Root,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|_| Strictness::Syntax)?;
    let errors = walk.errors.into_inner();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Strictness::Violations(errors))
    }
}

/// The integer literals (no `.`, `e` or `E`) outside strings that fit
/// neither `i64` nor `u64`: their ordinal among all number literals, and
/// their text. Only meaningful for valid JSON, where a `-` or digit outside
/// a string always starts a number.
fn wide_integers(bytes: &[u8]) -> Vec<(usize, String)> {
    let mut wide = Vec::new();
    let mut ordinal = 0;
    let mut iter = bytes.iter().enumerate().peekable();
    while let Some((start, b)) = iter.next() {
        match b {
            b'"' => {
                while let Some((_, c)) = iter.next() {
                    match c {
                        b'\\' => {
                            iter.next();
                        }
                        b'"' => break,
                        _ => {}
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let mut end = start + 1;
                while iter
                    .next_if(|(_, c)| matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .is_some()
                {
                    end += 1;
                }
                let literal = bytes.get(start..end).unwrap_or_default();
                if !literal.iter().any(|c| matches!(c, b'.' | b'e' | b'E')) {
                    let text = String::from_utf8_lossy(literal);
                    if text.parse::<i64>().is_err() && text.parse::<u64>().is_err() {
                        wide.push((ordinal, text.into_owned()));
                    }
                }
                ordinal += 1;
            }
            _ => {}
        }
    }
    wide
}

struct Walk {
    wide: Vec<(usize, String)>,
    numbers: RefCell<usize>,
    errors: RefCell<Vec<FieldError>>,
}

impl Walk {
    fn error(&self, at: &At<'_>, message: String) {
        let mut errors = self.errors.borrow_mut();
        if errors.len() < MAX_ERRORS {
            errors.push(FieldError {
                path: at.to_string(),
                message,
                line: None,
                column: None,
            });
        }
    }

    fn number(&self, at: &At<'_>) {
        let ordinal = {
            let mut n = self.numbers.borrow_mut();
            *n += 1;
            *n - 1
        };
        if let Ok(i) = self.wide.binary_search_by_key(&ordinal, |(o, _)| *o)
            && let Some((_, text)) = self.wide.get(i)
        {
            let shown: String = text.chars().take(40).collect();
            let more = if shown.len() < text.len() { "…" } else { "" };
            self.error(
                at,
                format!(
                    "`{shown}{more}` is an integer no 64-bit type holds (it would lose digits)"
                ),
            );
        }
    }
}

/// Where a value is, as a field path; rendered only for an error.
enum At<'a> {
    Root,
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => Ok(()),
            Self::Key(At::Root, key) => f.write_str(key),
            Self::Key(parent, key) => write!(f, "{parent}.{key}"),
            Self::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

struct Node<'a> {
    walk: &'a Walk,
    at: &'a At<'a>,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.walk.number(self.at);
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.walk.number(self.at);
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.walk.number(self.at);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let at = At::Index(self.at, i);
            let node = Node {
                walk: self.walk,
                at: &at,
            };
            if seq.next_element_seed(node)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = At::Key(self.at, &key);
            if keys.contains(&key) {
                self.walk.error(&at, format!("duplicate key `{key}`"));
            }
            map.next_value_seed(Node {
                walk: self.walk,
                at: &at,
            })?;
            keys.insert(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(body: &str) -> Vec<String> {
        match check(body.as_bytes()) {
            Ok(()) => Vec::new(),
            Err(Strictness::Violations(e)) => e.into_iter().map(|e| e.path).collect(),
            Err(Strictness::Syntax) => vec!["<syntax>".into()],
        }
    }

    #[test]
    fn duplicate_keys_are_found_where_they_are() {
        assert!(paths(r#"{"a":1,"b":{"c":[1,2,{"d":"x"}]}}"#).is_empty());
        assert_eq!(paths(r#"{"a":1,"a":2}"#), ["a"]);
        assert_eq!(
            paths(r#"{"action":"x","args":{"vendor":"evil","vendor":"acme"}}"#),
            ["args.vendor"]
        );
        assert_eq!(paths(r#"{"l":[{},{"k":1,"k":1}]}"#), ["l[1].k"]);
        // Escapes are undone before keys are compared.
        assert_eq!(paths(r#"{"vendor":1,"vend\u006fr":2}"#), ["vendor"]);
        // The same key in two objects is fine.
        assert!(paths(r#"[{"a":1},{"a":1}]"#).is_empty());
    }

    #[test]
    fn integers_beyond_64_bits_are_found_where_they_are() {
        assert!(
            paths(r#"{"a":18446744073709551615,"b":-9223372036854775808,"c":1.5e300,"d":"99999999999999999999"}"#)
                .is_empty()
        );
        assert_eq!(paths(r#"{"a":18446744073709551616}"#), ["a"]);
        assert_eq!(paths(r#"[1,-9223372036854775809]"#), ["[1]"]);
        assert_eq!(
            paths(r#"{"s":"1\"2","n":[0,{"x":100000000000000000000000}]}"#),
            ["n[1].x"]
        );
    }

    #[test]
    fn other_bodies_are_left_to_the_parser() {
        for bad in ["", "{", "{\"a\":1} x", "nope", &"[".repeat(10_000)] {
            assert_eq!(paths(bad), ["<syntax>"], "{bad}");
        }
    }

    #[test]
    fn json_content_types() {
        let ok = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            json_content_type(&h)
        };
        assert!(ok("application/json"));
        assert!(ok("application/json; charset=utf-8"));
        assert!(ok("application/problem+json"));
        assert!(ok("Application/JSON"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/jsonx"));
    }
}
