-- Principals (humans and service principals such as PEPs) and their API keys.
CREATE TABLE principals (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    roles       TEXT NOT NULL,            -- JSON array of role names
    groups_json TEXT NOT NULL,            -- JSON array of approver group names
    active      BOOLEAN NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE api_keys (
    key_hash     TEXT PRIMARY KEY,        -- SHA-256 of the key; the key itself is never stored
    principal_id TEXT NOT NULL REFERENCES principals(id),
    created_at   TEXT NOT NULL
);

-- One row per agent: the current version and lifecycle state.
CREATE TABLE agents (
    id             TEXT PRIMARY KEY,
    version        BIGINT NOT NULL,
    state          TEXT NOT NULL,         -- active | suspended | retired
    state_reason   TEXT,
    owner          TEXT NOT NULL,
    environment    TEXT NOT NULL,
    expires        TEXT NOT NULL,         -- YYYY-MM-DD
    manifest       TEXT NOT NULL,         -- JSON document
    source         TEXT NOT NULL,         -- the manifest as submitted
    last_review_at TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX agents_owner ON agents(owner);

-- Every version of every manifest, kept for ever.
CREATE TABLE agent_versions (
    agent_id   TEXT NOT NULL REFERENCES agents(id),
    version    BIGINT NOT NULL,
    manifest   TEXT NOT NULL,
    source     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (agent_id, version)
);

-- The audit log: append-only, hash-chained. `audit_head` holds the last
-- seq and hash; every append locks it first, which serializes appends
-- across connections and replicas.
CREATE TABLE audit_events (
    seq       BIGINT PRIMARY KEY,
    time      TEXT NOT NULL,
    type      TEXT NOT NULL,
    agent     TEXT,
    body      TEXT NOT NULL,              -- JSON of the event body (what the hash covers)
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_events_agent ON audit_events(agent, seq);
CREATE INDEX audit_events_type ON audit_events(type, seq);

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
