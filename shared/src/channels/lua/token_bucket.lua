-- A per-inbox token bucket whose rate halves when the provider throttles us and recovers
-- linearly afterwards (AIMD). One clock for the whole fleet: Redis TIME.
--
-- KEYS[1]  the bucket hash (fields tokens, ts, rate, until)
-- ARGV[1]  op: "take" (one token, or how long to wait) or "slow" (a throttle verdict)
-- ARGV[2]  capacity (burst, tokens)
-- ARGV[3]  max rate (tokens per second)
-- ARGV[4]  min rate (tokens per second; a throttle never halves below it)
-- ARGV[5]  recovery (rate units regained per second)
-- ARGV[6]  for "slow": how long to stop sending (ms, the provider's Retry-After)
-- ARGV[7]  TTL of the hash (ms)
-- Returns  { wait_ms, rate as a string }: wait_ms 0 means a token was taken.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[2])
local max_rate = tonumber(ARGV[3])
local min_rate = tonumber(ARGV[4])
local recovery = tonumber(ARGV[5])

local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'rate', 'until')
local tokens = tonumber(s[1]) or cap
local ts = tonumber(s[2]) or now
local rate = tonumber(s[3]) or max_rate
local until_ms = tonumber(s[4]) or 0

local elapsed = math.max(0, now - ts) / 1000
if now >= until_ms then
  rate = math.min(max_rate, rate + elapsed * recovery)
  tokens = math.min(cap, tokens + elapsed * rate)
end

local wait = 0
if ARGV[1] == 'slow' then
  rate = math.max(min_rate, rate / 2)
  tokens = 0
  until_ms = math.max(until_ms, now + tonumber(ARGV[6]))
  wait = until_ms - now
elseif now < until_ms then
  wait = until_ms - now
elseif tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / rate * 1000)
end

redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', math.max(ts, now),
  'rate', tostring(rate), 'until', until_ms)
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return { wait, tostring(rate) }
