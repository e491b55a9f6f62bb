-- Queues an evaluation for admission. Owner: dispatcher/backends/kube/admission/queue.py.
-- KEYS: 1 order (all queued), 2 arrivals counter, 3 turns (tenants with queued evaluations,
--       in serving order), 4 specs, 5 the tenant's queue
-- ARGV: 1 eval_id, 2 tenant, 3 the submission (JSON), 4 most queued (0 = no limit),
--       5 prefix of the tenants' queues
-- Returns the position (1 = next); the same for an evaluation already queued (a retry);
-- 0 if the queue is full, with nothing written.
local eval_id, tenant = ARGV[1], ARGV[2]
if not redis.call('ZSCORE', KEYS[1], eval_id) then
  local most = tonumber(ARGV[4])
  if most > 0 and redis.call('ZCARD', KEYS[1]) >= most then return 0 end
  local arrival = redis.call('INCR', KEYS[2])
  redis.call('ZADD', KEYS[1], arrival, eval_id)
  redis.call('ZADD', KEYS[5], arrival, eval_id)
  -- A tenant is in turns exactly while it has queued evaluations; a newcomer goes last.
  if redis.call('ZCARD', KEYS[5]) == 1 then redis.call('RPUSH', KEYS[3], tenant) end
  redis.call('HSET', KEYS[4], eval_id, ARGV[3])
end
return position(KEYS[3], ARGV[5], tenant, eval_id)
