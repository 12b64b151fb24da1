DROP INDEX failed_jobs_failed_at_id;
DROP INDEX failed_jobs_queue_failed_at_id;
CREATE INDEX failed_jobs_queue_failed_at ON failed_jobs (queue, failed_at);
