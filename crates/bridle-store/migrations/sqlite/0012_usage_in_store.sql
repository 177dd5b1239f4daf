-- Rate limits and budgets are decided in the store: each usage row says how
-- long it must be kept (the longest window that counts it), so any window
-- length survives restarts and purge never drops a row a window still sees.
ALTER TABLE usage_events ADD COLUMN keep_until_ms BIGINT NOT NULL DEFAULT 0;
-- Rows written before: kept as long as the in-process ledger looked back.
UPDATE usage_events SET keep_until_ms = at_ms + 2678400000;
CREATE INDEX usage_events_window ON usage_events(agent_id, arg, at_ms);
CREATE INDEX usage_events_keep ON usage_events(keep_until_ms);
DROP INDEX usage_events_agent;
