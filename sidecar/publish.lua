-- Publishes one crucible event atomically. Owner: sidecar/streams.py (read it for the contract).
-- KEYS: 1 evaluation stream, 2 global stream, 3 evaluation's publish metadata hash
-- ARGV: 1 dedup token ('' = none), 2 event JSON without v/seq, 3 '1' if terminal,
--       4 legacy channel ('' = none), 5 legacy payload, 6 evaluation stream maxlen,
--       7 global stream maxlen, 8 ttl seconds
-- Returns {seq, evaluation stream id, legacy published 0/1, duplicate 0/1}.
local meta = KEYS[3]
local token = ARGV[1]
if token ~= '' then
  local prev = redis.call('HGET', meta, 'tok:' .. token)
  if prev then
    local seq, id = string.match(prev, '^(%d+) (.+)$')
    return {tonumber(seq), id, 0, 1}
  end
end
local seq = redis.call('HINCRBY', meta, 'seq', 1)
local event = '{"v":1,"seq":' .. seq .. ',' .. string.sub(ARGV[2], 2)
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[6], '*', 'event', event)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'event', event)
local legacy = 0
if ARGV[4] ~= '' then
  -- Legacy consumers hear of one end only: the first terminal event wins.
  if ARGV[3] ~= '1' or redis.call('HSETNX', meta, 'terminal', seq) == 1 then
    redis.call('PUBLISH', ARGV[4], ARGV[5])
    legacy = 1
  end
elseif ARGV[3] == '1' then
  redis.call('HSETNX', meta, 'terminal', seq)
end
if token ~= '' then
  redis.call('HSET', meta, 'tok:' .. token, seq .. ' ' .. id)
end
local ttl = tonumber(ARGV[8])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', meta, ttl)
return {seq, id, legacy, 0}
