-- Applies one event to an evaluation record. Owner: dispatcher/store/store.py. The rules are stated
-- in tests/status_model.py, the differential model this script is tested against.
-- KEYS: 1 record hash, 2..11 status index sorted sets in the order of STATUSES below, 12..21
--       the same of the record's tenant, 22 the Kubernetes backend's admitted evaluations,
--       23 its tenant's (an end frees the admission slot at once, in the same step; on a Redis
--       Cluster they live in another slot, 22 and 23 are left out and the step after frees it)
-- ARGV: 1 seq, 2 type, 3 source, 4 '1' if the event says verified, 5 ts (JSON),
--       6.. name, JSON value pairs of the event's fields that are set
-- Record hash values are JSON texts. Returns 1 if the record changed, 0 if not (no record,
-- or a replay).
local STATUSES = {'accepted', 'queued', 'scheduled', 'pending', 'running', 'completed',
                  'failed', 'timeout', 'cancelled', 'error'}
local RANK = {accepted = 0, queued = 1, scheduled = 2, pending = 3, running = 4}
local ADMITTED = 2 + 2 * #STATUSES
local TERMINAL = {completed = true, failed = true, timeout = true, cancelled = true, error = true}
local VERDICT = {'exit_code', 'signal', 'duration_seconds', 'output', 'error', 'truncated',
                 'reason'}
local FILLED = {'output', 'error', 'truncated', 'started_at', 'duration_seconds'}
local EMPTY_WHEN_BLANK = {output = true, error = true}
local key = KEYS[1]

if redis.call('EXISTS', key) == 0 then return 0 end
local seq = tonumber(ARGV[1])
local last = tonumber(redis.call('HGET', key, 'last_seq') or '0')
if seq <= last then return 0 end

local etype, source, ts = ARGV[2], ARGV[3], ARGV[5]
local by_dispatcher_verified = ARGV[4] == '1' and source == 'dispatcher'
local ev = {}
for i = 6, #ARGV, 2 do ev[ARGV[i]] = ARGV[i + 1] end
local status = cjson.decode(redis.call('HGET', key, 'status'))
local new_status = status
local set = {last_seq = tostring(seq)}
local del = {}

local function shown(text)
  if not text then return 'none' end
  local value = cjson.decode(text)
  if type(value) == 'string' then return value end
  return text
end

-- Whether the record lacks a field (missing, or an empty text where that counts as missing).
local function lacks(name)
  local old = redis.call('HGET', key, name)
  return not old or (EMPTY_WHEN_BLANK[name] ~= nil and old == '""')
end

local function decided(name)
  if set[name] ~= nil then return true end
  for _, gone in ipairs(del) do
    if gone == name then return true end
  end
  return false
end

local function progress()
  if ev.job_name then set.job_name = ev.job_name end
  if etype == 'scheduled' then set.scheduled_at = ts end
  if etype == 'running' then set.started_at = ev.started_at or ts end
  if RANK[etype] >= RANK[status] then
    new_status = etype
    if etype == 'pending' and ev.reason then set.reason = ev.reason end
    if etype == 'queued' and ev.position then set.queue_position = ev.position end
    if etype == 'running' then table.insert(del, 'reason') end
  end
end

local function first_verdict()
  new_status = etype
  for _, name in ipairs(VERDICT) do
    if ev[name] then set[name] = ev[name] else table.insert(del, name) end
  end
  set.finished_at = ts
  set.verified = by_dispatcher_verified and 'true' or 'false'
end

local function confirmation()
  set.verified = 'true'
  if status == 'cancelled' then
    for _, name in ipairs({'exit_code', 'signal'}) do
      if ev[name] and redis.call('HEXISTS', key, name) == 0 then set[name] = ev[name] end
    end
    return
  end
  local notes = {}
  local exits = {completed = true, failed = true}
  -- The kubelet's verdict follows completed <-> failed, and overrides any first claim of
  -- success; other first ends (timeout, error) keep their status and gain the exit code.
  if etype ~= status and (status == 'completed' or (exits[status] and exits[etype])) then
    new_status = etype
    table.insert(notes, 'status ' .. status .. ' -> ' .. etype)
  end
  for _, name in ipairs({'exit_code', 'reason'}) do
    local old = redis.call('HGET', key, name)
    if ev[name] and ev[name] ~= old then
      table.insert(notes, name .. ' ' .. shown(old) .. ' -> ' .. shown(ev[name]))
      set[name] = ev[name]
    end
  end
  if set.exit_code then
    if ev.signal then set.signal = ev.signal else table.insert(del, 'signal') end
  end
  if #notes > 0 then set.correction = cjson.encode(table.concat(notes, ', ')) end
end

-- A later terminal event fills in only what the ended record still lacks.
local function fill_in()
  for _, name in ipairs(FILLED) do
    if ev[name] and not decided(name) and lacks(name) then set[name] = ev[name] end
  end
  local old_exit = redis.call('HGET', key, 'exit_code') or nil
  if ev.signal and not decided('signal') and not redis.call('HGET', key, 'signal')
      and ev.exit_code == old_exit then
    set.signal = ev.signal
  end
end

if etype == 'output' then
  -- output only advances last_seq
elseif RANK[etype] ~= nil then
  if not TERMINAL[status] then
    progress()
  elseif etype == 'running' and ev.started_at and lacks('started_at') then
    set.started_at = ev.started_at
  end
elseif TERMINAL[etype] then
  if not TERMINAL[status] then
    first_verdict()
  else
    if by_dispatcher_verified and redis.call('HGET', key, 'verified') ~= 'true' then
      confirmation()
    end
    fill_in()
  end
end

if new_status ~= status then
  set.status = cjson.encode(new_status)
  if status == 'queued' then table.insert(del, 'queue_position') end
  local score = tonumber(cjson.decode(redis.call('HGET', key, 'created_at')))
  local eval_id = cjson.decode(redis.call('HGET', key, 'eval_id'))
  for i, name in ipairs(STATUSES) do
    for _, offset in ipairs({1, 1 + #STATUSES}) do
      if name == status then redis.call('ZREM', KEYS[i + offset], eval_id) end
      if name == new_status then redis.call('ZADD', KEYS[i + offset], score, eval_id) end
    end
  end
  if TERMINAL[new_status] and KEYS[ADMITTED] then
    redis.call('ZREM', KEYS[ADMITTED], eval_id)
    redis.call('ZREM', KEYS[ADMITTED + 1], eval_id)
  end
end
local pairs_out = {}
for name, value in pairs(set) do
  table.insert(pairs_out, name)
  table.insert(pairs_out, value)
end
redis.call('HSET', key, unpack(pairs_out))
if #del > 0 then redis.call('HDEL', key, unpack(del)) end
return 1
