-- Move one in-flight entry to the delayed set for its next attempt: ack + delete + ZADD, atomic,
-- so the job is in exactly one place. If the entry is no longer ours (it was reclaimed while we
-- worked) nothing happens: the reclaimed copy owns the job now.
-- KEYS[1] stream   KEYS[2] delayed set   KEYS[3] stats hash
-- ARGV[1] group    ARGV[2] entry id      ARGV[3] due time (ms)   ARGV[4] next attempt's job JSON
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('HINCRBY', KEYS[3], 'retried', 1)
return 1
