-- The queue position of one queued evaluation (1 = the next to be admitted): the evaluations
-- that round robin over the tenants in ``turns`` serves before it. Its tenant has ``r`` ahead
-- of it; every other tenant has min(queued, r + 1) ahead if it is served earlier in a round,
-- min(queued, r) if later. Per-tenant caps are not counted: this is the order, not a time.
-- Prepended to enqueue.lua and queue_position.lua (wire/scripts.py); nil if not queued.
local function position(turns, queue_prefix, tenant, eval_id)
  local r = redis.call('ZRANK', queue_prefix .. tenant, eval_id)
  if not r then return nil end
  local ahead, earlier = r, true
  for _, other in ipairs(redis.call('LRANGE', turns, 0, -1)) do
    if other == tenant then
      earlier = false
    else
      local queued = redis.call('ZCARD', queue_prefix .. other)
      ahead = ahead + math.min(queued, earlier and r + 1 or r)
    end
  end
  return ahead + 1
end
