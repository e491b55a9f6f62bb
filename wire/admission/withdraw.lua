-- Takes a queued evaluation out of the queue (a cancel). Owner:
-- dispatcher/backends/kube/admission/queue.py.
-- KEYS: 1 order, 2 turns, 3 specs, 4 the tenant's queue   ARGV: 1 eval_id, 2 tenant
-- Returns 1 if it was queued, 0 if not (already admitted, or never queued).
if redis.call('ZREM', KEYS[4], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('ZCARD', KEYS[4]) == 0 then redis.call('LREM', KEYS[2], 0, ARGV[2]) end
return 1
