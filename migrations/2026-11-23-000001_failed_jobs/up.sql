-- Jobs that exhausted their tries or failed permanently: the queue's dead set.
-- Keyed by job id so that writing a failure twice (a crash between insert and ack) is harmless.
CREATE TABLE failed_jobs (
    id             TEXT PRIMARY KEY,
    queue          TEXT        NOT NULL,
    kind           TEXT        NOT NULL,
    payload        JSONB       NOT NULL,
    error          TEXT        NOT NULL,
    attempts       INTEGER     NOT NULL,
    correlation_id TEXT        NOT NULL,
    tenant_id      TEXT,
    failed_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX failed_jobs_queue_failed_at ON failed_jobs (queue, failed_at);

-- Receipts written by the `record` job kind: a smoke test of the whole path that proves each
-- job's effect landed exactly once (the primary key is the proof).
CREATE TABLE job_receipts (
    job_id   TEXT PRIMARY KEY,
    queue    TEXT        NOT NULL,
    attempt  INTEGER     NOT NULL,
    done_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
