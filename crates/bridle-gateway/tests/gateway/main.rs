//! The gateway end to end, in-process: the real Bridle server on a temp
//! SQLite file, a small rmcp upstream over streamable HTTP, the gateway in
//! front of it, and rmcp's own client as the agent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking: an unexpected shape should abort it loudly"
)]

mod calls;
#[path = "../../../bridle-server/tests/common/client_key.rs"]
#[expect(
    dead_code,
    reason = "shared with the server's tests, which use all of it"
)]
mod client_key;
mod dpop;
mod harness;
mod operability;
mod protocol;
mod raw;
mod relay;
mod sessions;
mod traffic;
