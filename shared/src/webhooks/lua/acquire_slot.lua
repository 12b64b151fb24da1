-- Takes one of an endpoint's fleet-wide in-flight slots, if one is free.
--
-- KEYS[1]  {prefix}:webhooks:{subscription}:inflight — sorted set: lease id → expiry (ms, Redis time)
-- ARGV[1]  the limit: slots per endpoint across every worker
-- ARGV[2]  the lease, ms: a slot whose worker died frees itself after this
-- ARGV[3]  this attempt's lease id
-- Returns 1 when the slot is taken, 0 when the endpoint is at its limit.
--
-- Expiry is on Redis's clock, so workers with skewed clocks agree on it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
-- The newest lease expires last: the key goes once every lease in it has.
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
