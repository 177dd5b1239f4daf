//! Bounds on what a manifest may be. Each is far above anything a real
//! manifest needs and low enough that hostile input can neither exhaust the
//! stack nor keep a core busy for long: parsing and compiling a manifest at
//! every bound at once takes well under a second.

/// Largest manifest source, in bytes (256 KiB). The reference agents are
/// under 1 KiB.
pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;

/// Deepest nesting of mappings and lists. Real manifests need five or six
/// levels.
pub const MAX_DEPTH: usize = 32;

/// Most nodes YAML aliases may expand to, over the whole file (a handful of
/// shared approver lists need tens).
pub const MAX_ALIAS_NODES: usize = 1_000;

/// Most entries of `tools`.
pub const MAX_GRANTS: usize = 500;

/// Most entries of any other list (`forbid`, `data`, `elevation`, an
/// elevation's `tools`, `approvers`, `in`, `windows`, `budgets`,
/// `delegation.to`, `sensitive`).
pub const MAX_LIST_ITEMS: usize = 500;

/// Most constrained arguments of one grant (`args` keys).
pub const MAX_ARGS: usize = 64;

/// Longest Cedar condition (`when`, `approval.when`, `auto_grant_when`), in
/// bytes.
pub const MAX_CONDITION_BYTES: usize = 4 * 1024;

/// Longest guardrail policy text, in bytes.
pub const MAX_GUARDRAIL_BYTES: usize = 64 * 1024;

/// Deepest nesting of a Cedar expression: brackets (`(`, `[`, `{`), `if`,
/// and chains of `!` or unary `-` each add a level.
pub const MAX_CEDAR_NESTING: usize = 16;

/// Most operators in one Cedar condition (each binary or unary operator,
/// `.`, `has`, `like`, `is`, `in`, `if`). A binary chain is as deep as it is
/// long once Cedar has parsed it.
pub const MAX_CEDAR_OPERATORS: usize = 128;
