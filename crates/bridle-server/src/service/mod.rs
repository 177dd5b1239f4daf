//! The services below the transports. An enforcement point (the decision
//! API, Envoy ext_authz, the MCP gateway through the decision API)
//! authenticates the caller and shapes the request; everything the decision
//! *means* happens here, as one unit, whichever transport asked:
//!
//! load → decide (pure) → consume approval → usage → audit → containment.
//!
//! Changes to the record go through [`manifest`]: authorize → parse and
//! compile → ownership → classify against the version in force → store →
//! audit; its history (versions, diffs) is read there too.
//!
//! Nothing here knows HTTP: errors are [`ServiceError`], which the server
//! maps to problem+json in one place.

#![expect(
    clippy::disallowed_methods,
    reason = "the services are below the transports: they reach the store for the caller a capability proved"
)]

pub mod agents;
pub mod approvals;
pub mod authorize;
pub mod console;
pub mod containment;
pub mod credentials;
pub mod decision;
pub mod elevation;
mod error;
pub mod findings;
pub mod health;
pub mod manifest;
pub mod outcome;
pub mod principals;
pub mod replay;
pub mod report;
pub mod tokens;
pub mod usage;

pub use decision::{ActionCall, Answer, Via};
pub use error::ServiceError;
