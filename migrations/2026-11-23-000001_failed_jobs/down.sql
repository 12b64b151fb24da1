DROP TABLE job_receipts;
DROP TABLE failed_jobs;
