package cacheapply

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/internal/redisconn"
	"github.com/lockstep-dr/lockstep/internal/service"
)

// checkEviction refuses a Redis that may evict keys under memory pressure,
// on any node (a replica promoted later included), unless allow
// (cache.allow_eviction). The version guard rests on version keys and
// tombstones staying as long as lockstep set them: one evicted, a late fill
// or a change replayed from another partition can write old data back and
// nothing would tell. A user whose INFO is refused is warned, not stopped:
// the policy cannot be read, and README's ACL grants +info.
func checkEviction(ctx context.Context, rdb redis.UniversalClient, allow bool, log *slog.Logger) error {
	var mu sync.Mutex
	var evicting, unread []string
	err := redisconn.EachNode(ctx, rdb, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "memory").Result()
		if infoRefused(err) {
			mu.Lock()
			unread = append(unread, c.Options().Addr)
			mu.Unlock()
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the memory settings of Redis %s: %w", c.Options().Addr, err)
		}
		maxmemory, policy, err := memorySettings(info)
		if err != nil {
			return fmt.Errorf("INFO memory of Redis %s: %w", c.Options().Addr, err)
		}
		if evicts(maxmemory, policy) {
			mu.Lock()
			evicting = append(evicting, fmt.Sprintf("%s (maxmemory %d bytes, maxmemory-policy %s)", c.Options().Addr, maxmemory, policy))
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(unread) > 0 {
		log.Warn("cannot check whether Redis may evict lockstep's version keys: its INFO is refused; grant the Redis user +info", "redis", strings.Join(unread, ", "))
	}
	if len(evicting) == 0 {
		return nil
	}
	if allow {
		log.Warn("Redis may evict keys under memory pressure, lockstep's version keys and tombstones among them, and cache.allow_eviction accepts it: after such an eviction a late fill or replayed change can write old data back", "redis", strings.Join(evicting, "; "))
		return nil
	}
	return service.Permanentf("Redis may evict keys under memory pressure: %s. It could evict lockstep's version keys and tombstones, after which a late fill or a replayed change writes old data back into the cache and nothing tells. Set maxmemory-policy noeviction (or maxmemory 0) on every node and bound the cache's memory with the rules' ttl; or set cache.allow_eviction: true to accept that risk",
		strings.Join(evicting, "; "))
}

// evicts says whether a Redis with these settings evicts keys when full:
// any policy but noeviction, once maxmemory bounds it.
func evicts(maxmemory int64, policy string) bool {
	return maxmemory > 0 && policy != "noeviction"
}

// memorySettings reads maxmemory and maxmemory_policy from INFO memory.
func memorySettings(info string) (maxmemory int64, policy string, err error) {
	value, ok := infoValue(info, "maxmemory")
	policy, ok2 := infoValue(info, "maxmemory_policy")
	if !ok || !ok2 {
		return 0, "", fmt.Errorf("no maxmemory and maxmemory_policy in it")
	}
	if maxmemory, err = strconv.ParseInt(value, 10, 64); err != nil {
		return 0, "", fmt.Errorf("maxmemory %q: %w", value, err)
	}
	return maxmemory, policy, nil
}

// infoRefused says whether INFO failed for the ACL user's lack of +info.
func infoRefused(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOPERM")
}

// infoValue is the value of the line "name:value" of an INFO reply.
func infoValue(info, name string) (string, bool) {
	for line := range strings.Lines(info) {
		if n, value, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && n == name {
			return value, true
		}
	}
	return "", false
}
