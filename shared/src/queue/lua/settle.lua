-- Settle in-flight entries that a job is done with: ack, delete (XACK alone keeps the entry in
-- memory) and count them. Entries no longer in our pending list (reclaimed while we worked)
-- are not counted: their copy lives on elsewhere.
-- KEYS[1] stream   KEYS[2] stats hash
-- ARGV[1] group    ARGV[2] stats field   ARGV[3..] entry ids
local ids = {unpack(ARGV, 3)}
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
if acked > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[2], acked)
end
return acked
