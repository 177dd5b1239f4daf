-- The authorization code grant (RFC 6749 §4.1, PKCE per RFC 7636) for
-- interactive clients identified by a client metadata document URL.
--
-- A pending authorization request waits for its owner's consent in the
-- console. The browser carries a random id; only its SHA-256 is stored.
-- Deciding deletes the row (`DELETE … RETURNING`), so a request is decided
-- at most once, on any replica.
CREATE TABLE oauth_requests (
    id_hash        TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    client_name    TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    state          TEXT,
    code_challenge TEXT NOT NULL,
    resource       TEXT,
    scope          TEXT,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL
);
CREATE INDEX oauth_requests_expires ON oauth_requests(expires_at);

-- An authorization code, bound to everything its redemption must match.
-- Only the SHA-256 of the code is stored. Redemption is the conditional
-- `UPDATE … WHERE consumed_at IS NULL`, so two replicas can never redeem
-- one code twice; a second attempt sets `reused_at`, and the token issued
-- from the first (`jti`) is revoked.
CREATE TABLE oauth_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    agent_id       TEXT NOT NULL REFERENCES agents(id),
    principal_id   TEXT NOT NULL,
    resource       TEXT,
    scope          TEXT,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    consumed_at    TEXT,
    reused_at      TEXT,
    jti            TEXT
);
CREATE INDEX oauth_codes_expires ON oauth_codes(expires_at);
