//! The response bodies of the API: views of storage rows and domain values
//! that this transport owns. Each derives `Serialize` (the wire format) and
//! `ToSchema` (its OpenAPI schema) and is built `From` the row or value it
//! shows, so `/openapi.json` describes the very types the handlers return,
//! and neither `bridle-store` nor `bridle-core` decides the JSON of the API.
//!
//! Field names and their order are the API contract (`docs/api.md`); the
//! snapshot of `/openapi.json` (`tests/openapi.rs`) fails on any change.

pub mod agent;
pub mod approval;
pub mod audit;
pub mod decision;
pub mod elevation;
pub mod history;
pub mod principal;
pub mod replay;
pub mod report;
pub mod time;
pub mod usage;
