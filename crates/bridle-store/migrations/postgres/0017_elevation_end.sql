-- An elevation ended early through the API (`POST .../elevations/{id}/end`):
-- who ended it (an actor, `principal:alice` or `agent:ir-bot`) and why.
-- `ended_at` (0002) is when; retirement ends elevations without either.
-- The end is a conditional update (`WHERE state IN ('pending', 'active')`),
-- so of several replicas ending the same elevation exactly one does.
ALTER TABLE elevations ADD COLUMN ended_by TEXT;
ALTER TABLE elevations ADD COLUMN end_reason TEXT;
