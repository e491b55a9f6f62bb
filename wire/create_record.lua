-- Creates an evaluation record unless one exists, within its tenant's limits. Owner:
-- dispatcher/store/store.py (create_keys, create_args).
-- KEYS: 1 record hash, 2 index of all records, 3 index of its status, 4 its tenant's index of
--       all, 5 its tenant's index of that status, 6 the set of tenants; then, in this order and
--       only when ARGV says so: its tenant's indexes of the statuses not yet ended (accepted,
--       queued, scheduled, pending, running; when ARGV[6] > 0), its tenant's submission bucket
--       (hash: tokens, at; when ARGV[7] > 0), the hash of a backend's queue entries (the local
--       backend's in-flight hash; when ARGV[9] ~= '')
-- ARGV: 1 ttl seconds, 2 created_at (index score), 3 eval_id, 4 creation nonce, 5 tenant,
--       6 most evaluations not yet ended (0 = no limit), 7 submissions per second (0 = no
--       limit), 8 burst, 9 the queue entry's field, 10 its value (written only when the record
--       is created: the backend takes the submission in the same step), 11 the record's
--       fields: name NUL JSON value NUL ..., one argument (a JSON text holds no raw NUL; one
--       argument instead of two per field halves what the client packs per call)
-- On a Redis Cluster the tenant's limits are the step before (tenant_admit.lua): ARGV 6 and 7
-- are 0 here. Returns {1, '', ''} if created; {0, the existing record's request_digest (JSON),
-- its creation nonce} if it exists (a client retry after a lost reply recognises its own
-- creation by the nonce); charge_limits's refusal over a limit, with nothing written.
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then
  return {0, redis.call('HGET', key, 'request_digest') or '',
          redis.call('HGET', key, 'creation_nonce') or ''}
end

local active_max, rate = tonumber(ARGV[6]), tonumber(ARGV[7])
local next_key = 7
local active, bucket = 0, nil
if active_max > 0 then
  for i = next_key, next_key + 4 do active = active + redis.call('ZCARD', KEYS[i]) end
  next_key = next_key + 5
end
if rate > 0 then
  bucket = KEYS[next_key]
  next_key = next_key + 1
end
local refused = charge_limits(active, active_max, bucket, rate, tonumber(ARGV[8]))
if refused then return refused end

local fields = {'creation_nonce', ARGV[4]}
for name, value in string.gmatch(ARGV[11], '([^%z]+)%z([^%z]*)%z') do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', key, unpack(fields))
redis.call('EXPIRE', key, ARGV[1])
for i = 2, 5 do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[3]) end
redis.call('SADD', KEYS[6], ARGV[5])
if ARGV[9] ~= '' then redis.call('HSET', KEYS[next_key], ARGV[9], ARGV[10]) end
return {1, '', ''}
