-- Audit integrity.
--
-- `format` says how a row's hash was computed. Rows written before this
-- migration keep format 1 (hash over the body re-serialised from its parsed
-- form) and go on verifying under that rule; every new row is format 2, its
-- hash over exactly the stored `body` text. Rows are not rewritten: their
-- hashes are what checkpoints and witnesses may already hold.
ALTER TABLE audit_events ADD COLUMN format BIGINT NOT NULL DEFAULT 1;

-- Signed checkpoints of the chain: the head hash at `seq`, at `time`,
-- signed (compact JWS `jws`) with a server signing key.
CREATE TABLE audit_checkpoints (
    seq   BIGINT PRIMARY KEY,
    head  TEXT NOT NULL,
    time  TEXT NOT NULL,
    jws   TEXT NOT NULL
);
