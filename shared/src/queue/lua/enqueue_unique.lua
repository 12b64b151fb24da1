-- Enqueue a job unless its dedup key was seen inside the dedup window (one atomic step, so two
-- concurrent redeliveries of one provider message can never both be enqueued).
-- KEYS[1] stream   KEYS[2] dedup key
-- ARGV[1] job JSON ARGV[2] dedup window (ms)   ARGV[3] job id
-- Returns {1, entry id} when enqueued, {0, id of the job that holds the key} for a duplicate.
local holder = redis.call('GET', KEYS[2])
if holder then
  return {0, holder}
end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
return {1, redis.call('XADD', KEYS[1], '*', 'job', ARGV[1])}
