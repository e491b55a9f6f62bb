-- Removes an evaluation whose submission was refused after its record was created (nothing
-- else removes one). Owner: dispatcher/store/store.py (Store.remove). One script, not MULTI:
-- a Redis Cluster client runs no transaction; every key shares the evaluation's hash tag.
-- KEYS: 1 record hash, 2 evaluation stream, 3 publish metadata, 4 the hash of a backend's
--       queue entries ('' field below: none), 5.. the indexes it is listed in
-- ARGV: 1 eval_id, 2 the queue entry's field in KEYS[4] ('' = none)
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if ARGV[2] ~= '' then redis.call('HDEL', KEYS[4], ARGV[2]) end
for i = 5, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
