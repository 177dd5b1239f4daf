-- Web console sessions. The cookie carries a random id; only its SHA-256
-- is stored, so a copy of the database cannot sign anyone in. A session
-- ends at `expires_at` (absolute) or when unused for the idle limit the
-- server checks against `last_seen_at`; signing out deletes the row. The
-- principal is read on every request, so a deactivated one is refused at
-- once on every replica.
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX console_sessions_principal ON console_sessions(principal_id);
CREATE INDEX console_sessions_expires ON console_sessions(expires_at);
