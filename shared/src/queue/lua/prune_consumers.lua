-- Delete group consumers that hold no pending entries and have been idle longer than a threshold
-- (every restarted process leaves one behind). Check and delete happen in one script, so a
-- consumer cannot read an entry in between and have it dropped from the pending list.
-- KEYS[1] stream
-- ARGV[1] group   ARGV[2] min idle (ms)
local pruned = 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local fields = {}
  for i = 1, #consumer, 2 do
    fields[consumer[i]] = consumer[i + 1]
  end
  if tonumber(fields['pending']) == 0 and tonumber(fields['idle']) > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
    pruned = pruned + 1
  end
end
return pruned
