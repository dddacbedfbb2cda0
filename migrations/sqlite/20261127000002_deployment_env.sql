-- Environment variables a deployment's release runs with, as a JSON object of strings.
ALTER TABLE deployments ADD COLUMN env_json TEXT NOT NULL DEFAULT '{}';
