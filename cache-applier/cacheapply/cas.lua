-- Guarded writes of many keys: each key is written or evicted only if its
-- change's version is newer than the version the key last saw.
-- KEYS: per op, the cached key and its version key (cache.VersionKey)
-- ARGV[1]: TTL of a tombstone in seconds; then per op:
--   version, mode (h: hash, s: string, d: delete), TTL of the value in
--   seconds (0: none), '1' for a write from a snapshot of the standby taken
--   at this version (it may replace what the change of the same version
--   wrote, the same row state, which a replayed change may not), how many
--   payload values follow, and the hash field/value pairs or the string
-- Returns how many ops were applied.
local tomb = ARGV[1]
local a = 2
local applied = 0
for i = 1, #KEYS, 2 do
  local key, vkey = KEYS[i], KEYS[i + 1]
  local version, mode, ttl, snap = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  local p, n = a + 5, tonumber(ARGV[a + 4])
  a = p + n
  local cur = redis.pcall('GET', vkey)
  if type(cur) == 'table' and cur.err then
    -- WRONGTYPE: name the key, which one call of many keys cannot
    return redis.error_reply(cur.err .. ' (version key ' .. vkey .. ' of ' .. key .. ')')
  end
  if not cur or cur < version or (cur == version and snap == '1') then
    applied = applied + 1
    if mode == 'd' then
      redis.call('DEL', key)
      redis.call('SET', vkey, version, 'EX', tomb)
    else
      if mode == 'h' then
        -- the row replaces the hash whole: a column now NULL has no field
        redis.call('DEL', key)
        if n >= 2 then
          redis.call('HSET', key, unpack(ARGV, p, p + n - 1))
        end
      else
        -- SET replaces a value of any type, and its TTL
        redis.call('SET', key, ARGV[p])
      end
      if ttl > 0 then
        redis.call('EXPIRE', key, ttl)
        redis.call('SET', vkey, version, 'EX', math.max(ttl, tonumber(tomb)))
      else
        redis.call('SET', vkey, version)
      end
    end
  end
end
return applied
