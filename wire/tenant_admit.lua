-- A tenant's limits on a Redis Cluster, the step before create_record.lua (whose keys live in
-- the evaluation's partition; the tenant's live under its own tag). Owner:
-- dispatcher/store/store.py (Store.create).
-- KEYS: 1 the tenant's evaluations not yet ended (sorted set, score created_at), 2 its
--       submission bucket (hash: tokens, at)
-- ARGV: 1 eval_id, 2 created_at, 3 most evaluations not yet ended (0 = no limit),
--       4 submissions per second (0 = no limit), 5 burst
-- Returns {1, '', ''} when the evaluation holds a place (taken now, or already: a retry), else
-- charge_limits's refusal, nothing written. An end frees the place (the step after
-- apply_event.lua); a place whose record never came, or whose end went unseen, is freed by
-- the store's sweep (Store.prune).
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {1, '', ''} end
local refused = charge_limits(redis.call('ZCARD', KEYS[1]), tonumber(ARGV[3]), KEYS[2],
                              tonumber(ARGV[4]), tonumber(ARGV[5]))
if refused then return refused end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return {1, '', ''}
