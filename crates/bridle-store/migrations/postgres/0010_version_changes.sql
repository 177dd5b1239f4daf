-- What each version changed against the one before it, as classified when
-- it was applied (`[{path, effect, detail}]`, JSON). Versions from before
-- this column have none; the server classifies them again from their
-- sources when asked.
ALTER TABLE agent_versions ADD COLUMN changes TEXT;
