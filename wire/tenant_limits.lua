-- A tenant's limits, checked and (when within them) charged in one step: prepended to
-- create_record.lua and tenant_admit.lua (Redis scripts cannot call each other).
-- Returns nil when within them, having taken a token from ``bucket``; else the reply
-- {2, 'active', ''} or {2, 'rate', seconds until a submission is allowed}, nothing written.
local function charge_limits(active, active_max, bucket, rate, burst)
  if active_max > 0 and active >= active_max then return {2, 'active', ''} end
  if rate > 0 then
    local clock = redis.call('TIME')
    local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
    local held = redis.call('HMGET', bucket, 'tokens', 'at')
    local tokens = tonumber(held[1]) or burst
    local at = tonumber(held[2]) or now
    tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
    if tokens < 1 then return {2, 'rate', tostring((1 - tokens) / rate)} end
    redis.call('HSET', bucket, 'tokens', tostring(tokens - 1), 'at', tostring(now))
    redis.call('EXPIRE', bucket, math.ceil(burst / rate) + 1)
  end
  return nil
end
