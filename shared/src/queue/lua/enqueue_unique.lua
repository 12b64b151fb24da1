-- Enqueue jobs of one queue, each unless its dedup key was seen inside the dedup window (one
-- atomic step, so two concurrent redeliveries of one provider message can never both be
-- enqueued). Several callers' jobs share one call (see queue::coalesce); each is decided alone.
-- KEYS[1] stream   KEYS[2..] one dedup key per job
-- ARGV[1] dedup window (ms)   then per job: job id, job JSON
-- Returns one {1, entry id} (enqueued) or {0, id of the job that holds the key} per job, in order.
local window = ARGV[1]
local out = {}
for i = 2, #KEYS do
  -- One command claims the key or names its holder (NX with GET: Redis 7.0).
  local holder = redis.call('SET', KEYS[i], ARGV[2 * i - 2], 'PX', window, 'NX', 'GET')
  if holder then
    out[i - 1] = {0, holder}
  else
    out[i - 1] = {1, redis.call('XADD', KEYS[1], '*', 'job', ARGV[2 * i - 1])}
  end
end
return out
