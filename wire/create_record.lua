-- Creates an evaluation record unless one exists. Owner: dispatcher/store.py.
-- KEYS: 1 record hash, 2 index of all records, 3 index of its status
-- ARGV: 1 ttl seconds, 2 created_at (index score), 3 eval_id, 4 creation nonce,
--       5.. field, JSON value pairs
-- Returns {1, '', ''} if created, else {0, the existing record's request_digest (JSON), its
-- creation nonce}: a client retry after a lost reply recognises its own creation by the nonce.
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then
  return {0, redis.call('HGET', key, 'request_digest') or '',
          redis.call('HGET', key, 'creation_nonce') or ''}
end
redis.call('HSET', key, 'creation_nonce', ARGV[4], unpack(ARGV, 5))
redis.call('EXPIRE', key, ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
return {1, '', ''}
