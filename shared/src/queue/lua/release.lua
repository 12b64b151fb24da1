-- Hand entries this consumer read but never started back to the stream (graceful shutdown),
-- keeping their fields, so another worker takes them now instead of after the lease runs out.
-- KEYS[1] stream
-- ARGV[1] group   ARGV[2..] entry ids
local released = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local found = redis.call('XRANGE', KEYS[1], id, id)
  if #found == 1 and redis.call('XACK', KEYS[1], ARGV[1], id) == 1 then
    redis.call('XADD', KEYS[1], '*', unpack(found[1][2]))
    redis.call('XDEL', KEYS[1], id)
    released = released + 1
  end
end
return released
