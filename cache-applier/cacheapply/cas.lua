-- KEYS[1] the cached key, KEYS[2] its version key
-- ARGV[1] version, ARGV[2] mode (h: hash, s: string, d: delete),
-- ARGV[3] TTL of the value in seconds (0: none), ARGV[4] TTL of a tombstone,
-- ARGV[5] '1' for a write from a snapshot of the standby taken at this
-- version: it may replace what the change of the same version wrote (the
-- same row state), which a replayed change may not,
-- ARGV[6..] hash field/value pairs, or the string value
local cur = redis.call('GET', KEYS[2])
if cur and (cur > ARGV[1] or (cur == ARGV[1] and ARGV[5] ~= '1')) then
  return 0
end
redis.call('DEL', KEYS[1])
if ARGV[2] == 'd' then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[4])
  return 1
end
if ARGV[2] == 'h' then
  if #ARGV >= 7 then
    redis.call('HSET', KEYS[1], unpack(ARGV, 6))
  end
else
  redis.call('SET', KEYS[1], ARGV[6])
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('SET', KEYS[2], ARGV[1], 'EX', math.max(ttl, tonumber(ARGV[4])))
else
  redis.call('SET', KEYS[2], ARGV[1])
end
return 1
