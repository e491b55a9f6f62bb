-- Creates an evaluation record unless one exists, within its tenant's limits. Owner:
-- dispatcher/store/store.py (create_keys, create_args).
-- KEYS: 1 record hash, 2 index of all records, 3 index of its status, 4 its tenant's index of
--       all, 5 its tenant's index of that status, 6 the set of tenants, 7..11 its tenant's
--       indexes of the statuses not yet ended (accepted, queued, scheduled, pending, running),
--       12 its tenant's submission bucket (hash: tokens, at), 13 (optional) the hash of a
--       backend's queue entries (the local backend's in-flight hash)
-- ARGV: 1 ttl seconds, 2 created_at (index score), 3 eval_id, 4 creation nonce, 5 tenant,
--       6 most evaluations not yet ended (0 = no limit), 7 submissions per second (0 = no
--       limit), 8 burst, 9 the queue entry's field in KEYS[13], 10 its value (written only when
--       the record is created: the backend takes the submission in the same step), 11 the
--       record's fields: name NUL JSON value NUL ..., one argument (a JSON text holds no raw
--       NUL; one argument instead of two per field halves what the client packs per call)
-- Returns {1, '', ''} if created; {0, the existing record's request_digest (JSON), its creation
-- nonce} if it exists (a client retry after a lost reply recognises its own creation by the
-- nonce); {2, 'active', ''} or {2, 'rate', seconds until a submission is allowed} over a limit,
-- with nothing written.
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then
  return {0, redis.call('HGET', key, 'request_digest') or '',
          redis.call('HGET', key, 'creation_nonce') or ''}
end

local active_max = tonumber(ARGV[6])
if active_max > 0 then
  local active = 0
  for i = 7, 11 do active = active + redis.call('ZCARD', KEYS[i]) end
  if active >= active_max then return {2, 'active', ''} end
end

local rate, burst = tonumber(ARGV[7]), tonumber(ARGV[8])
local tokens, now
if rate > 0 then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
  local bucket = redis.call('HMGET', KEYS[12], 'tokens', 'at')
  tokens = tonumber(bucket[1]) or burst
  local at = tonumber(bucket[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  if tokens < 1 then return {2, 'rate', tostring((1 - tokens) / rate)} end
end

local fields = {'creation_nonce', ARGV[4]}
for name, value in string.gmatch(ARGV[11], '([^%z]+)%z([^%z]*)%z') do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', key, unpack(fields))
redis.call('EXPIRE', key, ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[6], ARGV[5])
if KEYS[13] then redis.call('HSET', KEYS[13], ARGV[9], ARGV[10]) end
if rate > 0 then
  redis.call('HSET', KEYS[12], 'tokens', tostring(tokens - 1), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[12], math.ceil(burst / rate) + 1)
end
return {1, '', ''}
