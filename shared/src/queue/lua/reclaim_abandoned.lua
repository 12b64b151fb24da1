-- Give entries abandoned by a dead consumer (idle longer than the queue's lease) back to the
-- stream as new entries, counting in a `reclaims` field how often that happened, so a message
-- that keeps killing its worker is recognised as poison instead of looping forever.
-- XAUTOCLAIM moves them to the reclaimer first, so two reclaimers never both move one entry.
-- KEYS[1] stream
-- ARGV[1] group   ARGV[2] reclaimer consumer   ARGV[3] min idle (ms)   ARGV[4] most entries
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[4])[2]
local moved = 0
for _, entry in ipairs(claimed) do
  local id, fields = entry[1], entry[2]
  local copy, reclaims = {}, 0
  for i = 1, #fields, 2 do
    if fields[i] == 'reclaims' then
      reclaims = tonumber(fields[i + 1]) or 0
    else
      copy[#copy + 1] = fields[i]
      copy[#copy + 1] = fields[i + 1]
    end
  end
  copy[#copy + 1] = 'reclaims'
  copy[#copy + 1] = tostring(reclaims + 1)
  redis.call('XADD', KEYS[1], '*', unpack(copy))
  redis.call('XACK', KEYS[1], ARGV[1], id)
  redis.call('XDEL', KEYS[1], id)
  moved = moved + 1
end
return moved
