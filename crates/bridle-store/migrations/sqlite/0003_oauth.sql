-- OAuth for agents, part two: private_key_jwt clients, secret rotation with
-- an overlap window, delegated-token lineage, one-time JWT ids.

-- A credential is either a hashed secret or a registered public JWK
-- (RFC 7523 `private_key_jwt`). SQLite cannot drop NOT NULL in place, so the
-- table is rebuilt.
CREATE TABLE agent_credentials_new (
    client_id             TEXT PRIMARY KEY,
    agent_id              TEXT NOT NULL REFERENCES agents(id),
    secret_hash           TEXT,
    public_jwk            TEXT,           -- JSON, public members only
    previous_secret_hash  TEXT,           -- valid until previous_expires_at (rotation overlap)
    previous_expires_at   TEXT,
    created_at            TEXT NOT NULL,
    rotated_at            TEXT,
    revoked_at            TEXT,
    CHECK ((secret_hash IS NULL) <> (public_jwk IS NULL))
);
INSERT INTO agent_credentials_new (client_id, agent_id, secret_hash, created_at, revoked_at)
    SELECT client_id, agent_id, secret_hash, created_at, revoked_at FROM agent_credentials;
DROP TABLE agent_credentials;
ALTER TABLE agent_credentials_new RENAME TO agent_credentials;
CREATE INDEX agent_credentials_agent ON agent_credentials(agent_id);

-- The token a delegated token was exchanged from: revoking it revokes the
-- whole lineage.
ALTER TABLE tokens ADD COLUMN parent_jti TEXT;
CREATE INDEX tokens_parent ON tokens(parent_jti);
CREATE INDEX tokens_expires ON tokens(expires_at);

-- JWT ids that may be used once (client assertions, DPoP proofs), kept until
-- the JWT they came from has expired. The primary key makes reuse fail on
-- every replica.
CREATE TABLE used_jtis (
    kind       TEXT NOT NULL,             -- client_assertion | dpop
    jti        TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (kind, jti)
);
CREATE INDEX used_jtis_expires ON used_jtis(expires_at);
