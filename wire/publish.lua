-- Publishes one crucible event atomically. Owner: wire/keys.py and dispatcher/publish.py (read
-- them for the contract). Only the dispatcher runs it: pods hold no Redis credential.
-- KEYS: 1 evaluation stream, 2 global stream, 3 evaluation's publish metadata hash, 4 (optional)
--       a key that must exist, else nothing is published (a submission's record, created in
--       the same round trip unless its tenant was over a limit)
-- ARGV: 1 dedup token ('' = none), 2 event JSON without v/seq, 3 the same, slim (no output,
--       no tails) for the global stream ('' = not there: output), 4 '1' if terminal,
--       5 legacy channel ('' = none), 6 legacy payload (a JSON object), 7 evaluation stream
--       maxlen, 8 global stream maxlen, 9 ttl seconds, 10 byte budget of the producer (0 = none),
--       11 verdict ('type:exit_code', terminal events only), 12 '1' if the verdict is verified
-- Returns {seq, evaluation stream id, legacy published 0/1, duplicate 0/1, dropped 0/1}.
if KEYS[4] and redis.call('EXISTS', KEYS[4]) == 0 then return {0, '', 0, 0, 1} end
local meta = KEYS[3]
local token = ARGV[1]
if token ~= '' then
  local prev = redis.call('HGET', meta, 'tok:' .. token)
  if prev then
    local seq, id = string.match(prev, '^(%d+) (.+)$')
    return {tonumber(seq), id, 0, 1, 0}
  end
end
local terminal = ARGV[4] == '1'
local budget = tonumber(ARGV[10])
if budget > 0 then
  -- Whatever a pod sends, what it may store is bounded; its first verdict always gets in.
  local used = tonumber(redis.call('HGET', meta, 'bytes') or '0')
  local first_end = terminal and redis.call('HEXISTS', meta, 'terminal') == 0
  if used + #ARGV[2] > budget and not first_end then
    return {0, '', 0, 0, 1}
  end
  redis.call('HINCRBY', meta, 'bytes', #ARGV[2])
end
local seq = redis.call('HINCRBY', meta, 'seq', 1)
local head = '{"v":1,"seq":' .. seq .. ','
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[7], '*',
                      'event', head .. string.sub(ARGV[2], 2))
if ARGV[3] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*',
             'event', head .. string.sub(ARGV[3], 2), 'full', id)
end
local legacy = 0
local EXITS = {completed = true, failed = true}
if terminal then
  if redis.call('HSETNX', meta, 'terminal', seq) == 1 then
    redis.call('HSET', meta, 'verdict', ARGV[11])
    if ARGV[5] ~= '' then
      redis.call('PUBLISH', ARGV[5], ARGV[6])
      legacy = 1
    end
  elseif ARGV[12] == '1' and ARGV[5] ~= '' then
    -- The kubelet's verdict disagrees with the end legacy consumers heard: tell them, once.
    local old = redis.call('HGET', meta, 'verdict') or ''
    local old_type = string.match(old, '^(%a+):') or ''
    local new_type = string.match(ARGV[11], '^(%a+):') or ''
    local overrides = old_type == 'completed' or (EXITS[old_type] and EXITS[new_type])
    if old ~= ARGV[11] and overrides
        and redis.call('HSETNX', meta, 'corrected', seq) == 1 then
      local payload = string.sub(ARGV[6], 1, -2) .. ',"corrects":' .. cjson.encode(old) .. '}'
      redis.call('PUBLISH', ARGV[5], payload)
      legacy = 1
    end
  end
elseif ARGV[5] ~= '' then
  redis.call('PUBLISH', ARGV[5], ARGV[6])
  legacy = 1
end
if token ~= '' then
  redis.call('HSET', meta, 'tok:' .. token, seq .. ' ' .. id)
end
local ttl = tonumber(ARGV[9])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', meta, ttl)
return {seq, id, legacy, 0, 0}
