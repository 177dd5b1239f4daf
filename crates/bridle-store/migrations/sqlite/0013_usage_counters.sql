-- Usage is kept as counters per bucket of a second, a minute, an hour and a
-- day (`tier`, in seconds; `bucket` is the bucket's start divided by it), so
-- a window sums a few hundred rows whatever it saw. Each row is kept as long
-- as the longest window that counts what it holds. Without a rowid, the
-- primary key is the table: one B-tree to update and read.
CREATE TABLE usage_counters (
    agent_id TEXT NOT NULL,
    arg TEXT NOT NULL,
    tier BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    keep_until_ms BIGINT NOT NULL,
    PRIMARY KEY (agent_id, arg, tier, bucket)
) WITHOUT ROWID;
CREATE INDEX usage_counters_keep ON usage_counters(keep_until_ms);
-- The usage recorded before, one row per charge, counted the same way
-- (negative amounts were never counted).
WITH tiers(tier) AS (VALUES (86400), (3600), (60), (1))
INSERT INTO usage_counters (agent_id, arg, tier, bucket, amount, keep_until_ms)
SELECT e.agent_id, e.arg, t.tier, (e.at_ms / 1000) / t.tier, SUM(e.amount), MAX(e.keep_until_ms)
FROM usage_events e CROSS JOIN tiers t
WHERE e.amount >= 0
GROUP BY e.agent_id, e.arg, t.tier, (e.at_ms / 1000) / t.tier;
DROP TABLE usage_events;
