//! The HTTP API end to end: the real server in-process on a port-0 listener,
//! a fresh database per test, every test on SQLite and on PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

#[macro_use]
mod common;

#[path = "api/agents.rs"]
mod agents;
#[path = "api/approvals.rs"]
mod approvals;
#[path = "api/audit.rs"]
mod audit;
#[path = "api/authority.rs"]
mod authority;
#[path = "api/authorize.rs"]
mod authorize;
#[path = "api/authz_matrix.rs"]
mod authz_matrix;
#[path = "api/change_control.rs"]
mod change_control;
#[path = "api/console.rs"]
mod console;
#[path = "api/console_agent.rs"]
mod console_agent;
#[path = "api/credentials.rs"]
mod credentials;
#[path = "api/decisions.rs"]
mod decisions;
#[path = "api/delegation.rs"]
mod delegation;
#[path = "api/disclosure.rs"]
mod disclosure;
#[path = "api/dpop.rs"]
mod dpop;
#[path = "api/elevations.rs"]
mod elevations;
#[path = "api/enforcement.rs"]
mod enforcement;
#[path = "api/errors.rs"]
mod errors;
#[path = "api/ext_authz.rs"]
mod ext_authz;
#[path = "api/findings.rs"]
mod findings;
#[path = "api/fuzz.rs"]
mod fuzz;
#[path = "api/history.rs"]
mod history;
#[path = "api/language.rs"]
mod language;
#[path = "api/limits.rs"]
mod limits;
#[path = "api/metrics.rs"]
mod metrics;
#[path = "api/oauth.rs"]
mod oauth;
#[path = "api/path_ids.rs"]
mod path_ids;
#[path = "api/posture.rs"]
mod posture;
#[path = "api/principals.rs"]
mod principals;
#[path = "api/replicas.rs"]
mod replicas;
#[path = "api/reports.rs"]
mod reports;
#[path = "api/scenarios.rs"]
mod scenarios;
#[path = "api/shape_service.rs"]
mod shape_service;
#[path = "api/tls.rs"]
mod tls;
#[path = "api/trust_audit.rs"]
mod trust_audit;
#[path = "api/trust_authn.rs"]
mod trust_authn;
#[path = "api/trust_input.rs"]
mod trust_input;
#[path = "api/trust_kek.rs"]
mod trust_kek;
#[path = "api/trust_manifest.rs"]
mod trust_manifest;
#[path = "api/usage.rs"]
mod usage;
#[path = "api/webhooks.rs"]
mod webhooks;
