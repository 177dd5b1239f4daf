-- Posture findings as the sweeps saw them: one row per agent, kind of
-- finding and subject (a tool, a client; '' when the finding is about the
-- agent as a whole). Open while `resolved_at` is null; a finding that comes
-- back after being resolved reopens its row with a new `opened_at`. Writes
-- are conditional, so of several replicas sweeping at once exactly one
-- opens (and reports) a finding, and exactly one resolves it.
CREATE TABLE findings (
    agent_id TEXT NOT NULL,
    code TEXT NOT NULL,
    subject TEXT NOT NULL,
    severity TEXT NOT NULL,
    detail TEXT NOT NULL,
    evidence TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    resolved_at TEXT,
    PRIMARY KEY (agent_id, code, subject)
);
CREATE INDEX findings_open ON findings(agent_id) WHERE resolved_at IS NULL;
