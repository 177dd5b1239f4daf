-- OAuth for agents, part two: private_key_jwt clients, secret rotation with
-- an overlap window, delegated-token lineage, one-time JWT ids.

-- A credential is either a hashed secret or a registered public JWK
-- (RFC 7523 `private_key_jwt`).
ALTER TABLE agent_credentials ALTER COLUMN secret_hash DROP NOT NULL;
ALTER TABLE agent_credentials ADD COLUMN public_jwk TEXT;
ALTER TABLE agent_credentials ADD COLUMN previous_secret_hash TEXT;
ALTER TABLE agent_credentials ADD COLUMN previous_expires_at TEXT;
ALTER TABLE agent_credentials ADD COLUMN rotated_at TEXT;
ALTER TABLE agent_credentials ADD CONSTRAINT agent_credentials_one_kind
    CHECK ((secret_hash IS NULL) <> (public_jwk IS NULL));

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
