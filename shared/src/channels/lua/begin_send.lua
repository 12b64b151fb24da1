-- Marks one outbound message as being sent, unless something is already known of it.
--
-- KEYS[1]  the message's send record
-- ARGV[1]  TTL of an in-flight marker (ms)
-- Returns  the existing record ("inflight:<ms since epoch>" or "sent:<provider id>"), or false
--          when the record was absent and is now "inflight:<now>".
local existing = redis.call('GET', KEYS[1])
if existing then
  return existing
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], 'inflight:' .. now, 'PX', ARGV[1])
return false
