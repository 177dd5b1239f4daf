-- The decision an audit record answers (`detail.decision_id` of a
-- `decision` event), kept beside the body so that an outcome report can be
-- checked against the decision it names (who asked it, for which chain)
-- without scanning the log. The body stays exactly as hashed; this column
-- is an index of it, filled by the writer and here for earlier rows (read
-- with a pattern, so a body that is not valid JSON cannot stop the upgrade).
ALTER TABLE audit_events ADD COLUMN decision_id TEXT;
UPDATE audit_events
SET decision_id = substring(body FROM '"decision_id":"(dec_[A-Za-z0-9_-]+)"')
WHERE type = 'decision';
CREATE INDEX audit_events_decision ON audit_events(decision_id)
WHERE decision_id IS NOT NULL;
