"""The Lua scripts of the cap service. Each runs atomically in one round trip.

Every key of a person carries the hash tag ``{p:<profile_id>}``, so a script only ever touches
one Redis Cluster slot. No script reads Redis' clock: the caller passes the time.
"""

from __future__ import annotations

RESERVE = """
-- KEYS[1]: the send's reservation record; KEYS[2..]: one counter per rule (may repeat)
-- ARGV: send_key, at_ms, ttl_ms, trim_before_ms, n, then per rule: max, window_start_ms
local stored = redis.call('GET', KEYS[1])
-- The same send key gets the same answer; a released one (its send failed) is decided afresh.
if stored and cjson.decode(stored).s ~= 'released' then return stored end
local n = tonumber(ARGV[5])
for i = 1, n do
  local key = KEYS[1 + i]
  local max = tonumber(ARGV[4 + 2 * i])
  local start = ARGV[5 + 2 * i]
  local count = redis.call('ZCOUNT', key, start, '+inf')
  if count >= max then
    local oldest = redis.call('ZRANGEBYSCORE', key, start, '+inf', 'WITHSCORES',
                              'LIMIT', count - max, 1)
    local decision = cjson.encode({s = 'refused', rule = i, count = count,
                                   blocking = tonumber(oldest[2])})
    redis.call('SET', KEYS[1], decision, 'PX', ARGV[3])
    return decision
  end
end
local seen, keys = {}, {}
for i = 1, n do
  local key = KEYS[1 + i]
  if not seen[key] then
    seen[key] = true
    keys[#keys + 1] = key
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ARGV[4])
    redis.call('ZADD', key, ARGV[2], ARGV[1])
    redis.call('PEXPIRE', key, ARGV[3])
  end
end
local decision = cjson.encode({s = 'allowed', keys = keys})
redis.call('SET', KEYS[1], decision, 'PX', ARGV[3])
return decision
"""

RELEASE = """
-- KEYS[1]: the reservation record; KEYS[2..]: the counters it reserved in. ARGV[1]: send_key
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
local decision = cjson.decode(stored)
if decision.s ~= 'allowed' then return 0 end
for i = 2, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
decision.s = 'released'
redis.call('SET', KEYS[1], cjson.encode(decision), 'KEEPTTL')
return 1
"""

CLAIM = """
-- KEYS[1]: the person's open arbitration window (its end, ms); KEYS[2]: claims hash
-- ARGV: send_key, at_ms, window_ms, priority, journey_id, ttl_ms
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then return existing end
local at = tonumber(ARGV[2])
local open = redis.call('GET', KEYS[1])
local window_end
if open and tonumber(open) > at then
  window_end = tonumber(open)
else
  window_end = at + tonumber(ARGV[3])
  redis.call('SET', KEYS[1], tostring(window_end), 'PX', ARGV[6])
end
local claim = cjson.encode({w = window_end, p = tonumber(ARGV[4]), c = at, j = ARGV[5],
                            k = ARGV[1]})
redis.call('HSET', KEYS[2], ARGV[1], claim)
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return claim
"""

RESOLVE = """
-- KEYS[1]: claims hash. ARGV[1]: send_key. Returns the winning claim of the send's window:
-- highest priority, then earliest claim, then journey id, then send key.
local mine = redis.call('HGET', KEYS[1], ARGV[1])
if not mine then return false end
local window_end = cjson.decode(mine).w
local best = nil
local all = redis.call('HGETALL', KEYS[1])
for i = 2, #all, 2 do
  local claim = cjson.decode(all[i])
  if claim.w == window_end then
    if best == nil or claim.p > best.p
       or (claim.p == best.p and (claim.c < best.c
           or (claim.c == best.c and (claim.j < best.j
               or (claim.j == best.j and claim.k < best.k))))) then
      best = claim
    end
  end
end
return cjson.encode(best)
"""
