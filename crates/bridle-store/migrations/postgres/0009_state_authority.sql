-- Who last changed an agent's lifecycle state, so that a suspension made by
-- an admin (for an incident) is lifted only by an admin. `state_by` is the
-- audit actor (`principal:ID`, or `system` for automatic containment);
-- rows from before this column have neither and keep the old rule.
ALTER TABLE agents ADD COLUMN state_by TEXT;
ALTER TABLE agents ADD COLUMN state_by_admin BOOLEAN NOT NULL DEFAULT FALSE;
