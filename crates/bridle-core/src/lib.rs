//! Bridle's domain core: ids, the agent manifest, its compilation to Cedar,
//! the decision engine, and the audit record format. Pure: no I/O, no async.

pub mod activity;
pub mod audit;
pub mod cedar;
pub mod change;
pub mod compile;
pub mod decision;
pub mod delegation;
pub mod engine;
pub mod glob;
pub mod id;
pub mod ledger;
pub mod manifest;
pub mod reach;
pub mod replay;
pub mod resource;
pub mod secret;
pub mod specific;

pub use compile::{CompiledAgent, Guardrails};
pub use decision::{Decision, Effect, Reason, ReasonCode};
pub use engine::{
    ActionRequest, AgentState, ApprovalLookup, ApprovalStatus, Decided, DecisionInput, Engine,
    NoApprovals, Subject,
};
pub use manifest::{Manifest, ManifestError, ManifestErrors};
