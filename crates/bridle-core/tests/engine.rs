//! The decision engine, reason code by reason code, in the decision order of
//! the manifest spec. Every test fixes the clock, the ledger and the approval
//! store, so each rule is checked at exact instants.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

mod common;

#[path = "engine/approvals.rs"]
mod approvals;
#[path = "engine/arguments.rs"]
mod arguments;
#[path = "engine/delegation.rs"]
mod delegation;
#[path = "engine/elevation.rs"]
mod elevation;
#[path = "engine/explanations.rs"]
mod explanations;
#[path = "engine/grants.rs"]
mod grants;
#[path = "engine/inference.rs"]
mod inference;
#[path = "engine/lifecycle.rs"]
mod lifecycle;
#[path = "engine/limits.rs"]
mod limits;
#[path = "engine/specific.rs"]
mod specific;

use jiff::{SignedDuration, Timestamp};

fn approval_id(s: &str) -> bridle_core::id::ApprovalId {
    s.parse().unwrap()
}

fn secs(t: Timestamp, s: i64) -> Timestamp {
    t + SignedDuration::from_secs(s)
}
