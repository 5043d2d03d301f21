-- A read-through fill: write the value only if the key is still absent and
-- its version key still holds what it held before the database was read.
-- KEYS[1] the cached key, KEYS[2] its version key (cache.VersionKey)
-- ARGV[1] the version key's value read before the database ('' if none)
-- ARGV[2] TTL in seconds (0: none), ARGV[3] 'h' (hash) or 's' (string)
-- ARGV[4..] hash field/value pairs, or the string value
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then
  return 0
end
if ARGV[3] == 'h' then
  if #ARGV < 5 then
    return 0
  end
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
else
  redis.call('SET', KEYS[1], ARGV[4])
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
end
return 1
