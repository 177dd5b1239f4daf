//! The route table of the Envoy ext_authz endpoint: which HTTP request of an
//! agent is which action. Configured in the server's TOML file:
//!
//! ```toml
//! [ext_authz]
//! audiences = ["https://api.example.com"]   # tokens issued for the API
//!
//! [[ext_authz.routes]]
//! method = "POST"
//! path = "/api/purchase-requests"
//! action = "procurement.create_purchase_request"
//!
//! [[ext_authz.routes]]
//! method = "GET"
//! path = "/api/cases/{case}"
//! action = "crm.get_case"
//! resource = "crm:cases/{case}"
//! ```
//!
//! A path pattern is literal segments, `{name}` (one segment, captured: it
//! becomes an argument and may be used in `resource`) and a final `*` (any
//! rest). The first matching route wins; no route means no access.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtAuthzConfig {
    /// The token audiences this endpoint accepts (the URLs of the APIs
    /// behind Envoy); a token issued for any other audience, the server's
    /// own included, is refused. Empty: no token is accepted here.
    pub audiences: Vec<String>,
    /// The public base URL of the APIs behind Envoy, for DPoP `htu`
    /// (`https://api.example.com`); without it DPoP-bound tokens are refused
    /// here.
    pub public_url: Option<String>,
    pub routes: Vec<RouteRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// An HTTP method, or `*` for any.
    pub method: String,
    pub path: String,
    pub action: String,
    /// A resource template; `{name}` is replaced by the captured segment.
    #[serde(default)]
    pub resource: Option<String>,
}

/// A request mapped to an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub action: String,
    pub resource: Option<String>,
    /// Captured path segments, by name.
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Rest,
}

/// A route of `[ext_authz]` that cannot be used, and which one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ext_authz.routes[{route}]: {problem}")]
pub struct ExtAuthzConfigError {
    pub route: usize,
    pub problem: RouteProblem,
}

/// What is wrong with one `[[ext_authz.routes]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteProblem {
    #[error("unknown method `{0}`")]
    Method(String),
    #[error("path `{0}` must start with `/`")]
    PathStart(String),
    #[error("path `{0}`: `*` may only end a pattern")]
    RestNotLast(String),
    #[error("path `{path}`: bad parameter name `{name}`")]
    Parameter { path: String, name: String },
    #[error("`{0}` is not a tool name")]
    Action(String),
    #[error("unclosed `{{` in resource `{0}`")]
    Unclosed(String),
    #[error("resource `{template}` uses `{{{name}}}`, which the path does not capture")]
    Uncaptured { template: String, name: String },
    #[error("resource `{template}` is not a resource: {error}")]
    Resource {
        template: String,
        error: bridle_core::resource::ResourceError,
    },
}

fn pattern(path: &str) -> Result<Vec<Segment>, RouteProblem> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(RouteProblem::PathStart(path.to_owned()));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        out.push(if *part == "*" {
            if i + 1 != parts.len() {
                return Err(RouteProblem::RestNotLast(path.to_owned()));
            }
            Segment::Rest
        } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(RouteProblem::Parameter {
                    path: path.to_owned(),
                    name: name.to_owned(),
                });
            }
            Segment::Param(name.to_owned())
        } else {
            Segment::Literal((*part).to_owned())
        });
    }
    Ok(out)
}

impl ExtAuthzConfig {
    /// Check every route: a known method, a valid pattern, a tool name, and
    /// only captured parameters in `resource`. Errors name the route.
    pub fn validate(&self) -> Result<(), ExtAuthzConfigError> {
        for (i, r) in self.routes.iter().enumerate() {
            let at = |problem: RouteProblem| ExtAuthzConfigError { route: i, problem };
            let m = r.method.to_ascii_uppercase();
            if m != "*"
                && !["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
                    .contains(&m.as_str())
            {
                return Err(at(RouteProblem::Method(r.method.clone())));
            }
            let segments = pattern(&r.path).map_err(at)?;
            if !bridle_core::id::is_tool_name(&r.action) {
                return Err(at(RouteProblem::Action(r.action.clone())));
            }
            if let Some(template) = &r.resource {
                let mut rest = template.as_str();
                while let Some((_, open)) = rest.split_once('{') {
                    let (name, after) = open
                        .split_once('}')
                        .ok_or_else(|| at(RouteProblem::Unclosed(template.clone())))?;
                    if !segments.contains(&Segment::Param(name.to_owned())) {
                        return Err(at(RouteProblem::Uncaptured {
                            template: template.clone(),
                            name: name.to_owned(),
                        }));
                    }
                    rest = after;
                }
                // With each capture as a plain segment, it must be a resource.
                let sample = segments
                    .iter()
                    .fold(template.clone(), |acc, seg| match seg {
                        Segment::Param(name) => acc.replace(&format!("{{{name}}}"), "x"),
                        _ => acc,
                    });
                bridle_core::resource::Resource::parse(&sample).map_err(|error| {
                    at(RouteProblem::Resource {
                        template: template.clone(),
                        error,
                    })
                })?;
            }
        }
        Ok(())
    }

    /// The first route that matches `method path` (no query string).
    pub fn matching(&self, method: &str, path: &str) -> Option<Matched> {
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        self.routes.iter().find_map(|r| {
            if r.method != "*" && !r.method.eq_ignore_ascii_case(method) {
                return None;
            }
            let segments = pattern(&r.path).ok()?;
            let mut params = BTreeMap::new();
            let mut i = 0;
            for seg in &segments {
                match seg {
                    Segment::Rest => {
                        i = parts.len();
                        break;
                    }
                    Segment::Literal(l) => {
                        if parts.get(i) != Some(&l.as_str()) {
                            return None;
                        }
                    }
                    Segment::Param(name) => {
                        let value = parts.get(i).filter(|v| !v.is_empty())?;
                        params.insert(name.clone(), percent_decode(value)?);
                    }
                }
                i += 1;
            }
            if i != parts.len() {
                return None;
            }
            // A capture enters the resource percent-encoded, as one segment:
            // `%2F` in the path cannot add a segment, `%2e%2e` is still `..`
            // (which the resource grammar refuses).
            let resource = r.resource.as_ref().map(|t| {
                params.iter().fold(t.clone(), |acc, (k, v)| {
                    let v = percent_encoding::utf8_percent_encode(v, SEGMENT).to_string();
                    acc.replace(&format!("{{{k}}}"), &v)
                })
            });
            Some(Matched {
                action: r.action.clone(),
                resource,
                params,
            })
        })
    }
}

/// What a captured value keeps unencoded in a resource: RFC 3986's
/// unreserved characters, sub-delims, `:` and `@` (a path segment's).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// One path segment, percent-decoded; `None` when not UTF-8 or when it
/// decodes to a `/` (which would change what the segment names).
fn percent_decode(s: &str) -> Option<String> {
    let s = percent_encoding::percent_decode_str(s).decode_utf8().ok()?;
    (!s.contains('/')).then(|| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(routes: &[(&str, &str, &str, Option<&str>)]) -> ExtAuthzConfig {
        ExtAuthzConfig {
            routes: routes
                .iter()
                .map(|(m, p, a, r)| RouteRule {
                    method: (*m).into(),
                    path: (*p).into(),
                    action: (*a).into(),
                    resource: r.map(Into::into),
                })
                .collect(),
            ..ExtAuthzConfig::default()
        }
    }

    #[test]
    fn routes_match_by_method_and_segments() {
        let c = config(&[
            (
                "POST",
                "/api/purchase-requests",
                "procurement.create_purchase_request",
                None,
            ),
            (
                "GET",
                "/api/cases/{case}",
                "crm.get_case",
                Some("crm:cases/{case}"),
            ),
            ("*", "/files/*", "files.any", None),
        ]);
        c.validate().unwrap();
        let m = c.matching("post", "/api/purchase-requests").unwrap();
        assert_eq!(m.action, "procurement.create_purchase_request");
        assert!(c.matching("GET", "/api/purchase-requests").is_none());
        assert!(c.matching("POST", "/api/purchase-requests/1").is_none());
        let m = c.matching("GET", "/api/cases/12%2034").unwrap();
        assert_eq!(m.resource.as_deref(), Some("crm:cases/12%2034"));
        assert_eq!(m.params["case"], "12 34");
        assert!(c.matching("GET", "/api/cases/").is_none());
        assert!(
            c.matching("GET", "/api/cases/a%2Fb").is_none(),
            "an encoded slash"
        );
        // Dots stay dots, for the resource grammar to refuse.
        let m = c.matching("GET", "/api/cases/%2e%2e").unwrap();
        assert_eq!(m.resource.as_deref(), Some("crm:cases/.."));
        let m = c.matching("GET", "/api/cases/a%3Fb%23c%00").unwrap();
        assert_eq!(m.resource.as_deref(), Some("crm:cases/a%3Fb%23c%00"));
        assert_eq!(
            c.matching("DELETE", "/files/a/b").unwrap().action,
            "files.any"
        );
        assert!(c.matching("GET", "/elsewhere").is_none());
    }

    #[test]
    fn bad_routes_are_named() {
        for (route, why) in [
            (("FETCH", "/x", "a.b", None), "unknown method"),
            (("GET", "x", "a.b", None), "must start with"),
            (("GET", "/*/x", "a.b", None), "may only end"),
            (("GET", "/x", "not a tool", None), "not a tool name"),
            (
                ("GET", "/x/{id}", "a.b", Some("r:{other}")),
                "does not capture",
            ),
            (
                ("GET", "/x/{id}", "a.b", Some("r:../{id}")),
                "is not a resource",
            ),
            (("GET", "/x", "a.b", Some("no scheme")), "is not a resource"),
        ] {
            let e = config(&[route]).validate().unwrap_err().to_string();
            assert!(
                e.starts_with("ext_authz.routes[0]: ") && e.contains(why),
                "{e}"
            );
        }
    }
}
