-- What each agent did, by the hour: decisions per action, effect and
-- reason (the first reason code; `refused` for a request an enforcement
-- point refused before deciding), when last, and the argument values seen
-- in allowed uses (JSON, merged by the writer). Written in the audit
-- writer's transaction, from the same records.
CREATE TABLE agent_activity (
    agent_id TEXT NOT NULL,
    hour BIGINT NOT NULL,
    action TEXT NOT NULL,
    effect TEXT NOT NULL,
    reason TEXT NOT NULL,
    uses BIGINT NOT NULL,
    last_at TEXT NOT NULL,
    args TEXT NOT NULL,
    PRIMARY KEY (agent_id, hour, action, effect, reason)
) WITHOUT ROWID;
-- The decisions recorded before, counted the same way (their arguments
-- are not gathered again: `args` starts empty).
INSERT INTO agent_activity (agent_id, hour, action, effect, reason, uses, last_at, args)
SELECT agent,
       CAST(strftime('%s', substr(time, 1, 19)) AS INTEGER) / 3600,
       json_extract(body, '$.action'),
       json_extract(body, '$.decision'),
       COALESCE(json_extract(body, '$.reasons[0].code'), 'refused'),
       COUNT(*),
       MAX(time),
       '{}'
FROM audit_events
WHERE type = 'decision' AND agent IS NOT NULL
  AND json_extract(body, '$.action') IS NOT NULL
  AND json_extract(body, '$.decision') IS NOT NULL
GROUP BY 1, 2, 3, 4, 5;
