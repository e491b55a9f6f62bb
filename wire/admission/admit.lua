-- Takes the next evaluations to start, round robin over the tenants, within the limits of
-- evaluations admitted and not yet ended (apply_event.lua removes an ended one). Owner:
-- dispatcher/backends/kube/admission/queue.py.
-- KEYS: 1 order, 2 turns, 3 specs, 4 admitted (all tenants)
-- ARGV: 1 most admitted at once (0 = no limit), 2 now, 3 most to take in this call,
--       4 prefix of the tenants' queues, 5 prefix of the tenants' admitted sets,
--       6 a tenant's most admitted at once (0 = no limit), 7.. tenant, its own most (pairs)
-- Returns eval_id, submission (JSON), arrival, for each evaluation taken, in order.
local most, now, take = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local queue_prefix, admitted_prefix = ARGV[4], ARGV[5]
local caps = {}
for i = 7, #ARGV, 2 do caps[ARGV[i]] = tonumber(ARGV[i + 1]) end
local default_cap = tonumber(ARGV[6])
local taken = {}
local count = 0

local function take_from(tenant)
  local cap = caps[tenant] or default_cap
  if cap > 0 and redis.call('ZCARD', admitted_prefix .. tenant) >= cap then return false end
  local queue = queue_prefix .. tenant
  local head = redis.call('ZPOPMIN', queue)
  if redis.call('ZCARD', queue) == 0 then redis.call('LREM', KEYS[2], 0, tenant) end
  if #head == 0 then return false end
  local eval_id, arrival = head[1], head[2]
  redis.call('ZREM', KEYS[1], eval_id)
  redis.call('ZADD', KEYS[4], now, eval_id)
  redis.call('ZADD', admitted_prefix .. tenant, now, eval_id)
  local spec = redis.call('HGET', KEYS[3], eval_id) or ''
  redis.call('HDEL', KEYS[3], eval_id)
  table.insert(taken, eval_id)
  table.insert(taken, spec)
  table.insert(taken, arrival)
  return true
end

while count < take do
  if most > 0 and redis.call('ZCARD', KEYS[4]) >= most then break end
  local picked = false
  for _ = 1, redis.call('LLEN', KEYS[2]) do
    -- The head's turn: it moves to the back whether it is served or at its cap.
    local tenant = redis.call('LMOVE', KEYS[2], KEYS[2], 'LEFT', 'RIGHT')
    if not tenant then break end
    if take_from(tenant) then
      picked = true
      break
    end
  end
  if not picked then break end
  count = count + 1
end
return taken
