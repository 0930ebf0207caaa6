"""The Lua scripts of the cap service. Each runs atomically in one round trip.

Every key of a person carries the hash tag ``{p:<profile_id>}``, so a script only ever touches
one Redis Cluster slot. No script reads Redis' clock: the caller passes the time.

RESERVE is the hot path (every marketing send), so it does the least work it can: one MGET for the
record, the person's refresh note and merge forward, a ZCARD per counter (a range count only where
the counter could be at its limit), a ZADD per counter and the record's SET; expiry and trimming
happen once per refresh period (a day) per counter instead of on every send, and so does the
counter index (the names of the person's counters, for a merge to find). Records are plain strings,
not JSON. Records of the JSON version of RESERVE (before this format) are still read by RESERVE,
RELEASE and `RedisCapService.release`: they live as long as the counters. While workers of both
versions run side by side (a rolling upgrade), an old worker that meets a new record fails its
activity (decode error; Temporal retries it, nothing is sent unchecked), and a counter that an old
worker touched may expire up to the length of the overlap early, which the week of STRAGGLE
absorbs. Workers from before merges neither honour a merge forward nor keep the counter index: a
fold then also looks at the refresh note and the policy's counter names, and a journey counter
that only such a worker wrote, more than a day before the fold, is not carried over.
"""

from __future__ import annotations

RESERVE = """
-- KEYS[1]: the send's reservation record, <person prefix>r:<send_key>; KEYS[2]: the person's
-- refresh note; KEYS[3]: the person's merge forward (set once the id is merged into another);
-- KEYS[4]: the index of the person's counter names; KEYS[5..]: one counter per rule (may
-- repeat), <person prefix><counter name>
-- ARGV: send_key, at_ms, keep_ms, trim_before_ms, refresh_ms, then per rule: max,
-- window_start_ms
-- Reply: 1 when reserved, 'm<survivor>' when the person was merged (nothing is counted here),
-- else the refusal 'r<rule> <count> <blocking_ms>' (rule: 1-based).
-- Record: 'a' then each counter reserved in as '<length>:<key>'; the refusal; 'x' released.
local call, KEYS, ARGV = redis.call, KEYS, ARGV
local got = call('MGET', KEYS[1], KEYS[2], KEYS[3])
local stored, note = got[1], got[2]
if got[3] then return 'm' .. got[3] end
if stored then
  local kind = string.sub(stored, 1, 1)
  if kind == '{' then
    -- A record of the JSON version of this script (it lives as long as the counters).
    local old = cjson.decode(stored)
    if old.s == 'allowed' then return 1 end
    if old.s == 'refused' then
      return string.format('r%d %d %.0f', old.rule, old.count, old.blocking)
    end
    kind = 'x'
  end
  -- The same send key gets the same answer; a released one (its send failed) is decided afresh.
  if kind == 'a' then return 1 end
  if kind == 'r' then return stored end
end
local n = #KEYS - 4
local sizes = {}
for i = 1, n do
  local key = KEYS[4 + i]
  local size = sizes[key]
  if not size then
    size = call('ZCARD', key)
    sizes[key] = size
  end
  local max = ARGV[4 + 2 * i] + 0
  -- A counter holding fewer touches than the limit cannot have that many in the window:
  -- ZCARD is O(1), a range count is not (linear in a small counter's listpack).
  if size >= max then
    local start = ARGV[5 + 2 * i]
    local count = call('ZCOUNT', key, start, '+inf')
    if count >= max then
      local oldest = call('ZRANGEBYSCORE', key, start, '+inf', 'WITHSCORES',
                          'LIMIT', count - max, 1)
      local refusal = 'r' .. i .. ' ' .. count .. ' ' .. oldest[2]
      call('SET', KEYS[1], refusal, 'PX', ARGV[3])
      return refusal
    end
  end
end
-- Expiry and trimming are refreshed once per refresh_ms (wall clock), not on every send: the
-- note (TTL refresh_ms) lists '\\n<counter name>\\n' for each counter refreshed since it was
-- written (names are slugs: no newline), and a refreshed counter lives keep_ms + refresh_ms,
-- so while it is listed it still has more than keep_ms to live. A missing counter (size 0:
-- released, evicted) is refreshed whatever the note says. Trimming only frees memory:
-- reservations older than trim_before_ms are outside every window; they stay at most
-- refresh_ms longer. Each name the note lacks is also put in the index (a set that outlives
-- every counter), so a merge can find all of the person's counters.
local record, send, at, keep = 'a', ARGV[1], ARGV[2], ARGV[3]
local name_at = #KEYS[1] - #send - 1
local added = ''
local names = {}
for i = 5, n + 4 do
  local key = KEYS[i]
  local size = sizes[key]
  if size then
    sizes[key] = nil
    local name = '\\n' .. string.sub(key, name_at) .. '\\n'
    local listed = note and string.find(note, name, 1, true)
    if size > 0 and not listed then
      call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ARGV[4])
    end
    call('ZADD', key, at, send)
    if size == 0 or not listed then
      call('PEXPIRE', key, keep + ARGV[5])
      if not listed then
        added = added .. string.sub(name, 2)
        names[#names + 1] = string.sub(name, 2, -2)
      end
    end
    record = record .. #key .. ':' .. key
  end
end
if added ~= '' then
  call('SADD', KEYS[4], unpack(names))
  -- Only ever longer: the index must outlive the person's longest-kept counter.
  local life = keep + ARGV[5]
  if call('PTTL', KEYS[4]) < life then call('PEXPIRE', KEYS[4], life) end
  if note then
    call('SET', KEYS[2], note .. added, 'KEEPTTL')
  else
    call('SET', KEYS[2], '\\n' .. added, 'PX', ARGV[5])
  end
end
call('SET', KEYS[1], record, 'PX', keep)
return 1
"""

RELEASE = """
-- KEYS[1]: the reservation record; KEYS[2]: the person's merge forward; KEYS[3..]: the
-- counters it reserved in. ARGV[1]: send_key. Reply: 1 released, 0 nothing to release,
-- 'm<survivor>' merged (release it there).
local forward = redis.call('GET', KEYS[2])
if forward then return 'm' .. forward end
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
local kind = string.sub(stored, 1, 1)
if kind == '{' then
  if cjson.decode(stored).s ~= 'allowed' then return 0 end
elseif kind ~= 'a' then
  return 0
end
for i = 3, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('SET', KEYS[1], 'x', 'KEEPTTL')
return 1
"""

CLAIM = """
-- KEYS[1]: the person's open arbitration window (its end, ms); KEYS[2]: claims hash;
-- KEYS[3]: the person's merge forward. ARGV: send_key, at_ms, window_ms, priority, journey_id,
-- ttl_ms. Reply: the claim (JSON), or 'm<survivor>' when the person was merged.
local forward = redis.call('GET', KEYS[3])
if forward then return 'm' .. forward end
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

COUNT = """
-- A transactional touch (exempt, counted). KEYS[1]: the counter; KEYS[2]: the merge forward;
-- KEYS[3]: the counter index. ARGV: send_key, at_ms, ttl_ms, counter name.
-- Reply: 1 counted, or 'm<survivor>'.
local forward = redis.call('GET', KEYS[2])
if forward then return 'm' .. forward end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
return 1
"""

FORWARD = """
-- First half of folding a merged person into the survivor, in the merged id's slot: from now
-- on every script there answers 'm<survivor>' and changes nothing, so what is read next is
-- final. KEYS[1]: the merge forward; KEYS[2]: the counter index; KEYS[3]: the refresh note.
-- ARGV: survivor id, ttl_ms. Reply: the counter names (index, and the note's for counters of
-- workers older than the index).
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local names = redis.call('SMEMBERS', KEYS[2])
local note = redis.call('GET', KEYS[3])
if note then
  for name in string.gmatch(note, '[^\\n]+') do names[#names + 1] = name end
end
return names
"""

FOLD = """
-- Second half, in the survivor's slot, once per merged id (atomic: all of it or nothing).
-- KEYS[1]: the survivor's hash of folded ids; KEYS[2]: its counter index; KEYS[3]: its open
-- arbitration window; KEYS[4]: its claims hash; KEYS[5]: its own merge forward; then n
-- counters; then m reservation records.
-- ARGV[1..8]: merged id, n, m, ttl_ms (index and folded hash), the merged person's open
-- window end ('' none), that window's ttl_ms, claims ttl_ms, at_ms ('' unknown: windows are
-- left alone); then per counter: name, ttl_ms, entry count k, k pairs score member; then per
-- record: value, ttl_ms; then the claim count c, c pairs send_key claim. Reply: 1 folded,
-- 0 folded before, 'm<survivor>' when the survivor was itself merged since (fold into that
-- one instead).
local call, KEYS, ARGV = redis.call, KEYS, ARGV
local forward = call('GET', KEYS[5])
if forward then return 'm' .. forward end
if call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local n, m, ttl, at = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[8])
local function longer(key, ms)
  -- Every key of the service expires: -1 is one this script just made.
  if call('PTTL', key) < ms then call('PEXPIRE', key, ms) end
end
local a = 9
for i = 1, n do
  local key, name, keep, k = KEYS[5 + i], ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  for first = 0, k - 1, 256 do
    local entries = {}
    for j = first, math.min(k, first + 256) - 1 do
      entries[#entries + 1] = ARGV[a + 2 * j]
      entries[#entries + 1] = ARGV[a + 2 * j + 1]
    end
    call('ZADD', key, unpack(entries))
  end
  a = a + 2 * k
  if k > 0 then longer(key, keep) end
  call('SADD', KEYS[2], name)
end
for i = 1, m do
  call('SET', KEYS[5 + n + i], ARGV[a], 'PX', ARGV[a + 1], 'NX')
  a = a + 2
end
local c = tonumber(ARGV[a])
a = a + 1
for i = 1, c do
  call('HSETNX', KEYS[4], ARGV[a], ARGV[a + 1])
  a = a + 2
end
if c > 0 then longer(KEYS[4], tonumber(ARGV[7])) end
-- Both people waiting on an open arbitration window (one ending now is being decided now):
-- one window, the later end, so every claim competes with every other.
local theirs = tonumber(ARGV[5])
if theirs and at and theirs >= at then
  local ours = tonumber(call('GET', KEYS[3]))
  if ours and ours >= at then
    if ours ~= theirs then
      local final, early = math.max(ours, theirs), math.min(ours, theirs)
      local all = call('HGETALL', KEYS[4])
      for j = 2, #all, 2 do
        local claim = cjson.decode(all[j])
        if claim.w == early then
          claim.w = final
          call('HSET', KEYS[4], all[j - 1], cjson.encode(claim))
        end
      end
      call('SET', KEYS[3], tostring(final), 'KEEPTTL')
      longer(KEYS[3], tonumber(ARGV[6]))
    end
  else
    call('SET', KEYS[3], tostring(theirs), 'PX', ARGV[6])
  end
end
call('HSET', KEYS[1], ARGV[1], '1')
longer(KEYS[1], ttl)
longer(KEYS[2], ttl)
return 1
"""

BUDGET_RESERVE = """
-- One budget (a journey's, or a tag's shared by its journeys), in the budget's own slot.
-- KEYS[1]: the budget's usage hash (fields sends, value); KEYS[2]: the send's record there.
-- ARGV: value, max_sends (-1: none), max_value (-1: none), record ttl_ms.
-- Reply: 1 reserved (or reserved before under this send key), else the refusal
-- 's<sends used>' or 'v<value used>'. A refusal is not recorded: a retry asks afresh.
local stored = redis.call('GET', KEYS[2])
if stored and string.sub(stored, 1, 1) == 'a' then return 1 end
local used = redis.call('HMGET', KEYS[1], 'sends', 'value')
local sends, value = tonumber(used[1] or '0'), tonumber(used[2] or '0')
local v, max_sends, max_value = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if max_sends >= 0 and sends + 1 > max_sends then return 's' .. sends end
if max_value >= 0 and value + v > max_value then return 'v' .. value end
redis.call('HINCRBY', KEYS[1], 'sends', 1)
if v > 0 then redis.call('HINCRBY', KEYS[1], 'value', v) end
redis.call('SET', KEYS[2], 'a' .. ARGV[1], 'PX', ARGV[4])
return 1
"""

BUDGET_RELEASE = """
-- Give back what a send reserved in one budget. KEYS as BUDGET_RESERVE.
-- Reply: 1 released, 0 nothing reserved under this send key (or released before).
local stored = redis.call('GET', KEYS[2])
if not stored or string.sub(stored, 1, 1) ~= 'a' then return 0 end
local v = tonumber(string.sub(stored, 2))
redis.call('HINCRBY', KEYS[1], 'sends', -1)
if v > 0 then redis.call('HINCRBY', KEYS[1], 'value', 0 - v) end
redis.call('SET', KEYS[2], 'x', 'KEEPTTL')
return 1
"""
