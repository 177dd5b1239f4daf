-- Token signing keys (Ed25519). The private key never leaves the store and
-- the process; `retired_at` keeps a key in JWKS until its last token expires.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    private_der TEXT NOT NULL,            -- base64 PKCS#8
    public_x    TEXT NOT NULL,            -- base64url raw public key (JWK `x`)
    created_at  TEXT NOT NULL,
    retired_at  TEXT
);

-- OAuth client credentials of agents; the secret is stored hashed.
CREATE TABLE agent_credentials (
    client_id   TEXT PRIMARY KEY,
    agent_id    TEXT NOT NULL REFERENCES agents(id),
    secret_hash TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX agent_credentials_agent ON agent_credentials(agent_id);

-- Issued access tokens, for revocation (kept until they would have expired).
CREATE TABLE tokens (
    jti        TEXT PRIMARY KEY,
    agent_id   TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    issued_at  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX tokens_agent ON tokens(agent_id);

-- Human approvals, for actions and for elevations.
CREATE TABLE approvals (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,          -- action | elevation
    agent_id      TEXT NOT NULL,
    approval_key  TEXT NOT NULL,          -- binds to agent/chain, action, canonical args, resource
    action        TEXT NOT NULL,
    args          TEXT NOT NULL,          -- JSON (sensitive values already hashed)
    resource      TEXT,
    state         TEXT NOT NULL,          -- pending | approved | denied | expired | consumed | cancelled
    approvers     TEXT NOT NULL,          -- JSON array
    min_approvals BIGINT NOT NULL,
    allow_owner   BOOLEAN NOT NULL,
    owner         TEXT NOT NULL,
    elevation_id  TEXT,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    decided_at    TEXT,
    consumed_at   TEXT
);
CREATE INDEX approvals_key ON approvals(approval_key, state);
CREATE INDEX approvals_state ON approvals(state, created_at);

CREATE TABLE approval_votes (
    approval_id  TEXT NOT NULL REFERENCES approvals(id),
    principal_id TEXT NOT NULL,
    vote         TEXT NOT NULL,           -- approve | deny
    comment      TEXT,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (approval_id, principal_id)
);

-- Just-in-time elevations.
CREATE TABLE elevations (
    id            TEXT PRIMARY KEY,
    agent_id      TEXT NOT NULL,
    name          TEXT NOT NULL,
    reason        TEXT NOT NULL,
    duration_secs BIGINT NOT NULL,
    state         TEXT NOT NULL,          -- pending | active | ended | denied
    approval_id   TEXT,
    requested_by  TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    ended_at      TEXT
);
CREATE INDEX elevations_agent ON elevations(agent_id, state);

-- Usage for rate limits and budgets, so they survive a restart.
CREATE TABLE usage_events (
    agent_id TEXT NOT NULL,
    at_ms    BIGINT NOT NULL,
    arg      TEXT NOT NULL,               -- '' for the action count (rate)
    amount   BIGINT NOT NULL
);
CREATE INDEX usage_events_agent ON usage_events(agent_id, at_ms);
