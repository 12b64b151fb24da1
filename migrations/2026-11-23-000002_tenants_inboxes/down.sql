DROP TABLE inbox_replay_tokens;
DROP TABLE inboxes;
DROP TABLE tenants;
