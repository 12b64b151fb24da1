-- Move delayed jobs whose due time has come back into the stream, atomically per job, so a job
-- is never in both places and two promoters never promote one job twice.
-- KEYS[1] delayed set   KEYS[2] stream
-- ARGV[1] now (ms)      ARGV[2] most jobs to move
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, job in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'job', job)
  redis.call('ZREM', KEYS[1], job)
end
return #due
