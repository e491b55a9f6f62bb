-- Puts an admitted evaluation whose Job could not be created back where it was, and frees its
-- slot; its tenant is served first. Owner: dispatcher/backends/kube/admission/queue.py.
-- KEYS: 1 order, 2 turns, 3 specs, 4 the tenant's queue, 5 admitted, 6 the tenant's admitted
-- ARGV: 1 eval_id, 2 tenant, 3 the submission (JSON), 4 its arrival
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('LREM', KEYS[2], 0, ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
return 1
