-- Failed jobs are listed newest first, 50 to a page, across every queue or for one
-- (`worker failed list`, `/api/failed-jobs`), and pruned oldest first: in the incident where the
-- table is largest, the on-call engineer's every page sorted all of it. These indexes give
-- both orders with the id tie-break the pages use, so a page reads only its rows.
DROP INDEX failed_jobs_queue_failed_at;
CREATE INDEX failed_jobs_queue_failed_at_id ON failed_jobs (queue, failed_at, id);
CREATE INDEX failed_jobs_failed_at_id ON failed_jobs (failed_at, id);
