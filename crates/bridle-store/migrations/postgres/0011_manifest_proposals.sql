-- Change control: a widening manifest change (or a new agent) in an
-- environment under change control is proposed here and waits for a
-- `kind: change` approval; the version in force keeps deciding meanwhile.
-- No foreign key to `agents`: a new agent's rejected proposal stays as
-- evidence after its placeholder row is deleted and its id freed.
CREATE TABLE manifest_proposals (
    agent_id     TEXT NOT NULL,
    version      BIGINT NOT NULL,          -- the version it would become
    base_version BIGINT NOT NULL,          -- the version in force when proposed; 0 for a new agent
    state        TEXT NOT NULL,            -- pending | activated | rejected | expired | superseded
    manifest     TEXT NOT NULL,            -- JSON document
    source       TEXT NOT NULL,            -- the manifest as submitted
    changes      TEXT NOT NULL,            -- JSON [{path, effect, detail}] against base_version
    submitted_by TEXT NOT NULL,            -- principal id
    approval_id  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    decided_at   TEXT,
    PRIMARY KEY (agent_id, version)
);
CREATE INDEX manifest_proposals_state ON manifest_proposals(state, expires_at);
CREATE INDEX manifest_proposals_approval ON manifest_proposals(approval_id);
