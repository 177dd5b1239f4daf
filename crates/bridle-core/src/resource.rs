//! The resource grammar: what a decision's `resource`, an outcome's
//! retrievals and a data grant's glob may be. A request names a resource as
//! a URI-like `scheme:path`; it is parsed here once, at the edge, so the
//! engine only ever compares normalised, traversal-free names against the
//! manifest's globs.
//!
//! ```text
//! resource  = scheme ":" [ "//" authority ] path [ "?" query ] [ "#" fragment ]
//! scheme    = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
//! character = unreserved / sub-delims / ":" / "@" / "/" / "?" / "#" / "[" / "]"
//!           / "%" HEXDIG HEXDIG                       (RFC 3986; ASCII only)
//! ```
//!
//! - At most [`MAX_LEN`] bytes; no spaces, control characters, quotes,
//!   backslashes or non-ASCII (percent-encode them).
//! - Percent-encoding is decoded once: an encoded unreserved character
//!   (`%2e`, `%41`) is replaced by the character itself, so `%2e%2e` is
//!   `..`; other escapes keep their octet with upper-case hex. An encoded
//!   control character, `/` or `\`, or an escape that would decode again
//!   (`%252e`) is refused.
//! - The path (after the authority, before `?`/`#`) has no `.` or `..`
//!   segment and no empty segment, except one leading `/` and one trailing
//!   `/` (`file:///srv/a.txt`, `https://host/dir/`).
//!
//! `crm:cases/17`, `po:17`, `file:///tmp/x.txt`, `https://host/a?b=1` and
//! `demo://resource/static/document/a.md` are resources;
//! `crm:cases/../hr/salaries`, `crm:cases/%2e%2e/hr`, `crm:cases//1`,
//! `crm:a\nb` are not.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::glob::{Glob, GlobError};

/// The longest resource accepted, in bytes.
pub const MAX_LEN: usize = 1024;

/// A resource name that fits the grammar, in normal form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Resource(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("empty resource")]
    Empty,
    #[error("too long: {0} bytes (at most {MAX_LEN})")]
    TooLong(usize),
    #[error("expected `scheme:path`, like `crm:cases/17` or `https://host/a`")]
    NoScheme,
    #[error("`{0}` is not a scheme: a letter, then letters, digits, `+`, `-` or `.`")]
    BadScheme(String),
    #[error("{what} at byte {at} is not allowed: percent-encode it")]
    BadChar { what: String, at: usize },
    #[error("`%` at byte {at} is not followed by two hex digits")]
    BadEscape { at: usize },
    #[error("the escape `{escape}` at byte {at} is not allowed ({why})")]
    ForbiddenEscape {
        escape: String,
        at: usize,
        why: &'static str,
    },
    #[error("the path has a `{0}` segment")]
    DotSegment(String),
    #[error("the path has an empty segment (`//`)")]
    EmptySegment,
    #[error("the path is empty")]
    EmptyPath,
    #[error("`{glob}` is not in normal form; write `{normal}`")]
    NotNormal { glob: String, normal: String },
    #[error(transparent)]
    Glob(#[from] GlobError),
}

impl Resource {
    /// Check `s` against the grammar and normalise its percent-encoding.
    pub fn parse(s: &str) -> Result<Self, ResourceError> {
        check(s, false).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A data grant's resource glob (`crm:cases/*`): a [`Glob`] whose text fits
/// the resource grammar with `*` as a wildcard, already in normal form (an
/// escape that normalisation would rewrite could never match). `*` alone
/// matches every resource.
pub fn data_glob(s: &str) -> Result<Glob, ResourceError> {
    let glob = Glob::resource(s)?;
    if s != "*" {
        let normal = check(s, true)?;
        if normal != s {
            return Err(ResourceError::NotNormal {
                glob: s.to_owned(),
                normal,
            });
        }
    }
    Ok(glob)
}

impl FromStr for Resource {
    type Err = ResourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Resource {
    type Error = ResourceError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Resource> for String {
    fn from(r: Resource) -> Self {
        r.0
    }
}

impl AsRef<str> for Resource {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_allowed(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'?'
                | b'#'
                | b'['
                | b']'
        )
}

fn is_scheme_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

fn describe(c: char) -> String {
    if c.is_control() || c == ' ' {
        format!("the character U+{:04X}", u32::from(c))
    } else {
        format!("`{c}`")
    }
}

/// Validate and normalise; with `glob`, `*` may also stand in the scheme.
fn check(s: &str, glob: bool) -> Result<String, ResourceError> {
    if s.is_empty() {
        return Err(ResourceError::Empty);
    }
    if s.len() > MAX_LEN {
        return Err(ResourceError::TooLong(s.len()));
    }
    let normal = normalise(s)?;
    let (scheme, rest) = match normal.split_once(':') {
        Some((scheme, rest)) if !(glob && scheme.contains('*')) => (scheme, Some(rest)),
        _ if glob && normal.contains('*') => {
            // `crm*` or `*:x`: the text before the first `*` must begin a scheme.
            let head = normal.split('*').next().unwrap_or_default();
            if !head.bytes().all(is_scheme_char)
                || head
                    .bytes()
                    .next()
                    .is_some_and(|b| !b.is_ascii_alphabetic())
            {
                return Err(ResourceError::BadScheme(head.to_owned()));
            }
            return Ok(normal);
        }
        Some((scheme, rest)) => (scheme, Some(rest)),
        None => (normal.as_str(), None),
    };
    let Some(rest) = rest else {
        return Err(ResourceError::NoScheme);
    };
    let mut bytes = scheme.bytes();
    if !bytes.next().is_some_and(|b| b.is_ascii_alphabetic()) || !bytes.all(is_scheme_char) {
        return Err(ResourceError::BadScheme(scheme.to_owned()));
    }
    let hier = rest.split(['?', '#']).next().unwrap_or_default();
    let path = match hier.strip_prefix("//") {
        // The authority runs to the next `/`; it may be empty (`file:///x`).
        Some(after) => after.find('/').and_then(|i| after.get(i..)).unwrap_or(""),
        None if hier.is_empty() => return Err(ResourceError::EmptyPath),
        None => hier,
    };
    check_path(path)?;
    Ok(normal)
}

/// No `.`/`..` segment; no empty one but a leading and a trailing `/`.
fn check_path(path: &str) -> Result<(), ResourceError> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.is_empty() {
        return Ok(());
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(ResourceError::EmptySegment),
            "." | ".." => return Err(ResourceError::DotSegment(segment.to_owned())),
            _ => {}
        }
    }
    Ok(())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Check every character; decode escapes of unreserved characters, refuse
/// dangerous ones, upper-case the hex of the rest.
fn normalise(s: &str) -> Result<String, ResourceError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c == '%' {
            let mut digit = || {
                chars
                    .next()
                    .and_then(|(_, d)| u8::try_from(d).ok())
                    .and_then(hex)
            };
            let (Some(hi), Some(lo)) = (digit(), digit()) else {
                return Err(ResourceError::BadEscape { at });
            };
            let octet = hi * 16 + lo;
            let forbidden = |why| ResourceError::ForbiddenEscape {
                escape: format!("%{octet:02X}"),
                at,
                why,
            };
            if octet < 0x20 || octet == 0x7f {
                return Err(forbidden("a control character"));
            }
            if octet == b'/' || octet == b'\\' {
                return Err(forbidden("an encoded path separator"));
            }
            if octet == b'%' {
                let rest = s.get(at + 3..at + 5).unwrap_or_default().as_bytes();
                if rest.len() == 2 && rest.iter().all(|b| hex(*b).is_some()) {
                    return Err(forbidden("it would decode twice"));
                }
            }
            if is_unreserved(octet) {
                out.push(char::from(octet));
            } else {
                out.push_str(&format!("%{octet:02X}"));
            }
        } else if c.is_ascii() && is_allowed(c as u8) {
            out.push(c);
        } else {
            return Err(ResourceError::BadChar {
                what: describe(c),
                at,
            });
        }
    }
    // Decoding can bring hex digits next to a `%25` (`%25%41a` becomes
    // `%25Aa`): the normal form must not decode twice either.
    let bytes = out.as_bytes();
    if let Some(at) = out.match_indices("%25").map(|(i, _)| i).find(|&i| {
        bytes
            .get(i + 3..i + 5)
            .is_some_and(|rest| rest.iter().all(|b| hex(*b).is_some()))
    }) {
        return Err(ResourceError::ForbiddenEscape {
            escape: "%25".to_owned(),
            at,
            why: "it would decode twice",
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_used_by_agents_and_gateways_parse_unchanged() {
        for ok in [
            "crm:cases/17",
            "crm:cases/C-1",
            "po:17",
            "r:x",
            "dir:users/alice",
            "file:///tmp/x.txt",
            "file:///home/user/project/",
            "https://host/a?b",
            "https://example.com/doc",
            "https://host",
            "https://user@host:8443/a/b;v=1?q=a/../b#frag",
            "demo://resource/static/document/architecture.md",
            "demo://resource/dynamic/text/1",
            "test://static/resource/1",
            "urn:isbn:0451450523",
            "mailto:a@example.com",
            "crm:cases/12%2034",
            "s3://bucket/a%C3%A9.txt",
            "docs:100%25",
        ] {
            assert_eq!(Resource::parse(ok).map(String::from).as_deref(), Ok(ok));
        }
    }

    #[test]
    fn escapes_of_unreserved_characters_are_decoded_once() {
        let r = Resource::parse("crm:cases/%41%2d1%3f").unwrap();
        assert_eq!(r.as_str(), "crm:cases/A-1%3F");
    }

    #[test]
    fn traversal_and_hostile_text_are_refused() {
        for (bad, why) in [
            ("", "empty"),
            ("crm:cases/../../hr/salaries", "`..` segment"),
            ("crm:cases/./1", "`.` segment"),
            ("crm:cases/%2e%2e/hr", "`..` segment"),
            ("crm:cases/%2E%2E", "`..` segment"),
            ("crm:cases/.%2e/hr", "`..` segment"),
            ("file:///srv/../etc/passwd", "`..` segment"),
            ("crm:cases//1", "empty segment"),
            ("crm:cases/..%2Fhr", "path separator"),
            ("crm:cases/a%5Cb", "path separator"),
            ("crm:cases/%00", "control"),
            ("crm:cases/%0a", "control"),
            ("crm:cases/%252e%252e", "decode twice"),
            ("crm:cases/1\0", "U+0000"),
            ("crm:cases/1\nx", "U+000A"),
            ("crm:cases/a b", "U+0020"),
            ("crm:cases/\"x", "`\"`"),
            ("crm:cases/a\\b", "`\\`"),
            ("crm:cases/é", "`é`"),
            ("crm:cases/%zz", "two hex digits"),
            ("crm:cases/%4", "two hex digits"),
            ("cases/1", "scheme:path"),
            ("1crm:x", "not a scheme"),
            (":x", "not a scheme"),
            ("crm:", "path is empty"),
        ] {
            let e = Resource::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let long = format!("crm:{}", "a".repeat(MAX_LEN));
        assert_eq!(
            Resource::parse(&long),
            Err(ResourceError::TooLong(MAX_LEN + 4))
        );
        assert!(Resource::parse(&format!("crm:{}", "a".repeat(MAX_LEN - 4))).is_ok());
    }

    #[test]
    fn data_globs_fit_the_grammar() {
        for ok in ["*", "crm:cases/*", "crm:*", "crm*", "r:*", "https://host/*"] {
            assert!(data_glob(ok).is_ok(), "{ok}");
        }
        for bad in [
            "crm:cases/../*",
            "crm:cases//*",
            "crm:%2e%2e/*",
            "crm:cases/%41*",
            "crm cases/*",
            "1crm*",
            "cases",
            "crm:\"x",
        ] {
            assert!(data_glob(bad).is_err(), "{bad}");
        }
    }

    /// Fully percent-decode (every escape, as a downstream service might).
    fn decode_all(s: &str) -> Vec<u8> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match (
                b[i],
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                (b'%', Some(hi), Some(lo)) => {
                    out.push(hi * 16 + lo);
                    i += 3;
                }
                (c, _, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever is accepted is in normal form, stays within bounds, and
        /// names no parent or current directory and no control character even
        /// after a downstream service decodes it completely.
        #[test]
        fn accepted_resources_cannot_escape(
            tail in proptest::collection::vec(
                proptest::sample::select(vec![
                    "a", "b", ".", "..", "/", "//", "%2e", "%2E", "%2f", "%25", "%5c",
                    "%00", "%0a", "%41", "%20", "?", "#", ":", "\n", " ", "\\", "*", "~",
                ]),
                0..12,
            ),
            scheme in proptest::sample::select(vec!["crm:", "crm:cases/", "file://", "https://h/", "x", ""]),
        ) {
            let s = format!("{scheme}{}", tail.concat());
            if let Ok(r) = Resource::parse(&s) {
                proptest::prop_assert_eq!(Resource::parse(r.as_str()), Ok(r.clone()));
                proptest::prop_assert!(r.as_str().len() <= MAX_LEN);
                let decoded = decode_all(r.as_str());
                proptest::prop_assert!(!decoded.iter().any(|b| *b < 0x20 || *b == 0x7f));
                let text = String::from_utf8_lossy(&decoded).into_owned();
                let hier = text.split(['?', '#']).next().unwrap_or_default();
                let path = hier.split_once(':').map_or("", |(_, p)| p);
                let path = path.strip_prefix("//").map_or(path, |a| a.find('/').and_then(|i| a.get(i..)).unwrap_or(""));
                proptest::prop_assert!(
                    !path.split('/').any(|seg| seg == "." || seg == ".."),
                    "{} decodes to a dot segment", r
                );
            }
        }

        /// A resource glob `P*` built from an accepted resource `P` matches
        /// only resources that start with `P`, whatever the request adds.
        #[test]
        fn prefix_globs_hold(extra in "[a-z./%0-9]{0,12}") {
            let glob = data_glob("crm:cases/*").unwrap();
            if let Ok(r) = Resource::parse(&format!("crm:cases/{extra}")) {
                proptest::prop_assert!(glob.matches(r.as_str()));
                proptest::prop_assert!(!r.as_str().contains("/../") && !r.as_str().ends_with("/.."));
            }
        }
    }
}
