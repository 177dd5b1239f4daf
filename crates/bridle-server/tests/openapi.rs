//! The OpenAPI document (`GET /openapi.json`, R4): built in-process, no server.
//! It must describe exactly the routes of `routes::router`, each error as
//! problem+json, and which operations need no bearer authentication.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

use std::collections::BTreeSet;

use serde_json::{Value, json};

/// The methods an `any` route is documented with (what Envoy forwards).
const ANY: &[&str] = &["get", "post", "put", "patch", "delete"];

/// Every route of the router (`routes::ROUTES`, the list the router is
/// built from) as the document names it: (path, method), `{*path}` as
/// `{path}`, `any` as [`ANY`]. The bare `/ext_authz` is the same operation
/// as `/ext_authz/{path}` with an empty path, documented once.
fn routes() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (method, path) in bridle_server::routes::ROUTES {
        if *path == "/ext_authz" {
            continue;
        }
        let path = path.replace("{*", "{");
        let methods: Vec<&str> = if *method == "any" {
            ANY.to_vec()
        } else {
            vec![*method]
        };
        for m in methods {
            out.insert((path.clone(), m.to_owned()));
        }
    }
    out
}

/// Operations that take no bearer token.
const PUBLIC: &[&str] = &[
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/schemas/manifest-v1.json",
    "/.well-known/oauth-authorization-server",
    "/.well-known/jwks.json",
    "/oauth/authorize",
    "/oauth/token",
];

/// Operations for an agent's OAuth client or a principal's API key (RFC 7662
/// and RFC 7009 want the caller authenticated, not necessarily by bearer).
const CLIENT_OR_BEARER: &[&str] = &["/oauth/introspect", "/oauth/revoke"];

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

/// The document as served, through its JSON text.
fn document() -> Value {
    let doc = bridle_server::openapi::document_json().expect("the document serializes");
    let text = serde_json::to_string(&doc).expect("the document serializes");
    serde_json::from_str(&text).expect("the document is JSON")
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths").iter() {
        for (method, op) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op));
            }
        }
    }
    out
}

/// Resolves a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

/// Follows `$ref`s until a value without one.
fn deref<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        v = resolve(doc, r).unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    v
}

#[test]
fn is_openapi_3_1() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.1"), "openapi is {version}");
    assert!(doc["info"]["title"].is_string());
    assert!(doc["info"]["version"].is_string());
}

#[test]
fn documents_exactly_the_routes_of_the_router() {
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(p, m, _)| (p, m))
        .collect();
    let expected = routes();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(missing.is_empty(), "routes not documented: {missing:?}");
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
}

#[test]
fn operation_ids_are_unique_and_every_operation_has_a_tag() {
    let doc = document();
    let mut seen = BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(seen.insert(id.to_owned()), "duplicate operationId {id}");
        assert!(
            op["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{method} {path} has no tag"
        );
    }
}

#[test]
fn path_parameters_are_declared() {
    let doc = document();
    for (path, method, op) in operations(&doc) {
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(
                    p["required"], true,
                    "{method} {path}: path params are required"
                );
                p["name"].as_str().expect("name")
            })
            .collect();
        let in_template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared, in_template, "{method} {path}");
    }
}

#[test]
fn query_parameters_are_declared() {
    let doc = document();
    let query = |path: &str| -> BTreeSet<String> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let set = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
    assert_eq!(query("/v1/approvals"), set(&["state"]));
    assert_eq!(
        query("/v1/audit"),
        set(&["agent", "type", "since", "after", "limit"])
    );
    assert_eq!(query("/v1/findings"), set(&["agent"]));
}

#[test]
fn security_bearer_everywhere_except_the_public_endpoints() {
    let doc = document();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["client_secret_basic"]["type"], "http");
    assert_eq!(schemes["client_secret_basic"]["scheme"], "basic");
    let global: Vec<&Value> = doc["security"]
        .as_array()
        .expect("security")
        .iter()
        .collect();
    assert_eq!(global.len(), 1);
    assert!(
        global[0].get("bearer").is_some(),
        "global security is bearer"
    );

    for (path, method, op) in operations(&doc) {
        let own = op.get("security").and_then(Value::as_array);
        if PUBLIC.contains(&path.as_str()) {
            let own = own.unwrap_or_else(|| panic!("{method} {path} must override security"));
            assert!(
                own.iter()
                    .any(|r| r.as_object().is_some_and(|o| o.is_empty())),
                "{method} {path} must allow no authentication"
            );
            assert!(
                own.iter().all(|r| r.get("bearer").is_none()),
                "{method} {path} must not ask for a bearer token"
            );
        } else if CLIENT_OR_BEARER.contains(&path.as_str()) {
            let own = own.unwrap_or_else(|| panic!("{method} {path} must override security"));
            assert!(own.iter().any(|r| r.get("client_secret_basic").is_some()));
            assert!(own.iter().any(|r| r.get("bearer").is_some()));
            assert!(
                own.iter()
                    .all(|r| r.as_object().is_some_and(|o| !o.is_empty())),
                "{method} {path} must require authentication"
            );
        } else {
            assert!(own.is_none(), "{method} {path} must inherit bearer");
            assert!(
                op["responses"].get("401").is_some(),
                "{method} {path} must document 401"
            );
        }
    }
    let token = &doc["paths"]["/oauth/token"]["post"];
    assert!(
        token["security"]
            .as_array()
            .expect("security")
            .iter()
            .any(|r| r.get("client_secret_basic").is_some())
    );
    let form = &token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
    let form = deref(&doc, form);
    for field in [
        "grant_type",
        "client_id",
        "client_secret",
        "scope",
        "resource",
        "client_assertion_type",
        "client_assertion",
        "subject_token",
        "subject_token_type",
        "actor_token",
        "actor_token_type",
        "code",
        "redirect_uri",
        "code_verifier",
    ] {
        assert!(
            form["properties"].get(field).is_some(),
            "token form lacks {field}"
        );
    }
}

#[test]
fn errors_are_problem_json() {
    let doc = document();
    let problem = &doc["components"]["schemas"]["Problem"];
    let required: BTreeSet<&str> = problem["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for field in ["type", "title", "status", "detail"] {
        assert!(required.contains(field), "Problem.{field} is required");
    }
    let errors = &problem["properties"]["errors"];
    assert!(errors.to_string().contains("FieldError"), "{errors}");
    let field_error = &doc["components"]["schemas"]["FieldError"];
    for field in ["path", "message", "line", "column"] {
        assert!(field_error["properties"].get(field).is_some());
    }

    let mut checked = 0;
    for (path, method, op) in operations(&doc) {
        if path.starts_with("/oauth/") {
            continue; // the OAuth error format (RFC 6749 §5.2)
        }
        for (status, response) in op["responses"].as_object().expect("responses") {
            if !(status.starts_with('4') || status.starts_with('5')) {
                continue;
            }
            if path == "/ext_authz/{path}" && status == "403" {
                continue; // a refusal Envoy passes on to the agent, not an error of this API
            }
            let response = deref(&doc, response);
            let content = response["content"].as_object().expect("content");
            assert_eq!(
                content.keys().collect::<Vec<_>>(),
                ["application/problem+json"],
                "{method} {path} {status}"
            );
            assert_eq!(
                content["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{method} {path} {status}"
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} error responses");
}

#[test]
fn the_agent_put_takes_yaml_or_json() {
    let doc = document();
    let body = &doc["paths"]["/v1/agents/{id}"]["put"]["requestBody"];
    assert_eq!(body["required"], true);
    let types: BTreeSet<&str> = body["content"]
        .as_object()
        .expect("content")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["application/yaml", "application/json"])
    );
    for media in ["application/yaml", "application/json"] {
        let example = &body["content"][media]["example"];
        assert_eq!(example["agent"], "procurement-bot", "{media}: {example}");
        assert!(example["tools"].is_array(), "{media}: {example}");
    }
}

/// The fields of each JSON request body, as the API contract names them.
#[test]
fn request_bodies_have_the_contract_fields() {
    const BODIES: &[(&str, &str, bool, &[&str])] = &[
        (
            "/v1/principals",
            "post",
            true,
            &["id", "name", "roles", "groups"],
        ),
        ("/v1/agents/{id}/suspend", "post", true, &["reason"]),
        ("/v1/agents/{id}/resume", "post", true, &["reason"]),
        ("/v1/agents/{id}/retire", "post", true, &["reason"]),
        ("/v1/agents/{id}/review", "post", false, &["comment"]),
        (
            "/v1/agents/{id}/elevations",
            "post",
            true,
            &["name", "duration", "reason"],
        ),
        (
            "/v1/agents/{id}/elevations/{elevation_id}/end",
            "post",
            true,
            &["reason"],
        ),
        (
            "/v1/decisions",
            "post",
            true,
            &[
                "action",
                "args",
                "resource",
                "agent_token",
                "audience",
                "agent_dpop",
            ],
        ),
        (
            "/v1/decisions/{id}/outcome",
            "post",
            true,
            &[
                "status",
                "retrievals",
                "agent_token",
                "audience",
                "agent_dpop",
            ],
        ),
        ("/v1/agents/{id}/credentials", "post", false, &["jwk"]),
        (
            "/v1/agents/{id}/credentials/{client_id}/rotate",
            "post",
            false,
            &["overlap"],
        ),
        ("/v1/approvals/{id}/approve", "post", false, &["comment"]),
        ("/v1/approvals/{id}/deny", "post", false, &["comment"]),
    ];
    let doc = document();
    for (path, method, required, fields) in BODIES {
        let body = &doc["paths"][path][method]["requestBody"];
        assert_eq!(
            body["required"].as_bool().unwrap_or(false),
            *required,
            "{method} {path}: {body}"
        );
        let schema = deref(&doc, &body["content"]["application/json"]["schema"]);
        let properties: BTreeSet<&str> = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}: {schema}"))
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            properties,
            fields.iter().copied().collect(),
            "{method} {path}"
        );
    }
    // Operations without a body declare none.
    for (path, method) in [
        ("/v1/principals/{id}/deactivate", "post"),
        ("/v1/agents/{id}/credentials/{client_id}/revoke", "post"),
        ("/v1/keys/rotate", "post"),
    ] {
        assert!(doc["paths"][path][method].get("requestBody").is_none());
    }
}

#[test]
fn every_ref_resolves() {
    fn walk<'a>(v: &'a Value, refs: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    refs.push(r);
                }
                m.values().for_each(|v| walk(v, refs));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let doc = document();
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        assert!(resolve(&doc, r).is_some(), "dangling $ref {r}");
    }
}

#[test]
fn links_name_existing_operations() {
    let doc = document();
    let ids: BTreeSet<String> = operations(&doc)
        .into_iter()
        .filter_map(|(_, _, op)| op["operationId"].as_str().map(String::from))
        .collect();
    let mut links = 0;
    for (path, method, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().expect("responses") {
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                let target = link["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path} {status} link {name}: {link}"));
                assert!(ids.contains(target), "link {name} to unknown {target}");
                links += 1;
            }
        }
    }
    assert!(links >= 3, "{links} links");
}

/// An object schema with named fields: its own `properties`, or an `allOf`
/// (a record extended with more fields) whose every part has them.
fn has_properties(doc: &Value, schema: &Value) -> bool {
    let schema = deref(doc, schema);
    schema.get("properties").is_some()
        || schema["allOf"]
            .as_array()
            .is_some_and(|parts| !parts.is_empty() && parts.iter().all(|p| has_properties(doc, p)))
}

/// Every success body is a named schema generated from the type the handler
/// returns, not an untyped `object`: only the documents whose shape another
/// standard defines (this one) is left open.
#[test]
fn success_bodies_are_the_types_returned() {
    const OPEN: &[&str] = &["/openapi.json"];
    let doc = document();
    let mut checked = 0;
    for (path, method, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().expect("responses") {
            if !status.starts_with('2') {
                continue;
            }
            let response = deref(&doc, response);
            let Some(content) = response.get("content").and_then(Value::as_object) else {
                continue;
            };
            for (media, body) in content {
                if media != "application/json" || OPEN.contains(&path.as_str()) {
                    continue;
                }
                let schema = body["schema"]["$ref"].as_str().unwrap_or_else(|| {
                    panic!("{method} {path} {status}: body is not a named type: {body}")
                });
                assert!(
                    resolve(&doc, schema).is_some_and(|s| has_properties(&doc, s)),
                    "{method} {path} {status}: `{schema}` has no properties"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "only {checked} success bodies checked");
}

/// Two types that share a schema name collide in the document: utoipa keeps
/// one, and the other's values then violate it (a change's `effect` once
/// read as a decision's). Every component must be the one type its
/// references expect: here, each response type's enums hold the values the
/// type serialises, checked on the types this crate names twice.
#[test]
fn a_change_effect_is_not_a_decision_effect() {
    let doc = document();
    let decision = &doc["components"]["schemas"]["Effect"]["enum"];
    let change = &doc["components"]["schemas"]["ChangeEffect"]["enum"];
    assert_eq!(decision, &json!(["allow", "deny", "approval_required"]));
    assert_eq!(change, &json!(["widening", "narrowing", "neutral"]));
    let view = &doc["components"]["schemas"]["ChangeView"]["properties"]["effect"]["$ref"];
    assert_eq!(view, "#/components/schemas/ChangeEffect");
}

/// `/metrics` is documented with exactly the content type it is served
/// with (what schemathesis checks a live answer against).
#[test]
fn metrics_are_documented_as_served() {
    let doc = document();
    let ok = &doc["paths"]["/metrics"]["get"]["responses"]["200"];
    let types: Vec<&String> = ok["content"].as_object().expect("content").keys().collect();
    assert_eq!(types, [bridle_server::metrics::CONTENT_TYPE]);
    assert_eq!(
        ok["content"][bridle_server::metrics::CONTENT_TYPE]["schema"]["type"],
        "string"
    );
}

/// The whole document as served: a change to a path, a parameter, a schema or
/// a field of a response type shows up here as a snapshot diff to review
/// (`cargo insta review`) rather than as a surprise to a client.
#[test]
fn the_document_is_the_reviewed_contract() {
    insta::assert_json_snapshot!("openapi", document());
}
