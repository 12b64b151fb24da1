-- Trim stream entries that every consumer group is done with, never an unacked one (invariant 7).
-- For each group the first entry it still needs is its oldest pending entry, or, with nothing
-- pending, the first entry after its last-delivered id (groups read in id order, so everything up
-- to that id was delivered, and what is delivered and not pending is acked). XTRIM MINID to the
-- lowest of those drops only entries below it. A stream without a group is left alone: no one
-- has read anything yet. Atomic, so no delivery can slip in between the look and the trim.
-- KEYS[1] stream
-- Returns {entries trimmed, the MINID used ('' when nothing was trimmed)}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, ''}
end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then
  return {0, ''}
end

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return {tonumber(ms), tonumber(seq)}
end

local function lower(a, b)
  if b == nil or a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) then
    return a
  end
  return b
end

local floor = nil
for _, group in ipairs(groups) do
  local name, last
  for i = 1, #group, 2 do
    if group[i] == 'name' then
      name = group[i + 1]
    elseif group[i] == 'last-delivered-id' then
      last = group[i + 1]
    end
  end
  local need = parse(last)
  need[2] = need[2] + 1
  local pending = redis.call('XPENDING', KEYS[1], name)
  if pending[1] > 0 then
    need = lower(parse(pending[2]), need)
  end
  floor = lower(need, floor)
end

local minid = string.format('%.0f-%.0f', floor[1], floor[2])
local trimmed = redis.call('XTRIM', KEYS[1], 'MINID', minid)
return {trimmed, minid}
