package cacheapply

import (
	"errors"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/internal/service"
)

// redisPermanent are the error prefixes of Redis replies that repeat on
// every retry, with what to do about them. The others (LOADING, BUSY,
// READONLY and MASTERDOWN during a failover, CLUSTERDOWN, TRYAGAIN, OOM
// until memory frees, NOSCRIPT after a restart) and every network error
// pass by themselves.
var redisPermanent = map[string]string{
	"WRONGTYPE": "a key lockstep writes holds another type: another writer uses the key space of a cache rule; give lockstep its own key_prefix, or fix the rule's format",
	"NOPERM":    "the Redis user may not run what lockstep needs: grant it the commands and keys README, Security lists",
	"CROSSSLOT": "a script's keys are in different Redis Cluster slots: a key and its version key must share one (cache.VersionKey); is a client of another layout writing?",
	"NOAUTH":    "set redis.password (and redis.user for an ACL user)",
	"WRONGPASS": "check redis.user and redis.password",
	"ERR":       "",
}

// redisPassingErr are ERR replies that pass: too many clients, and a
// script's key that a slot migration has just moved off the node (Redis
// Cluster answers a script so where a command would get ASK; the retry
// finds the key's node).
var redisPassingErr = []string{"max number of clients", "non local key"}

// classifyRedis sorts an error from Redis into retry (returned as is) and
// stop (service.Permanent), in one place for every path that writes Redis.
func classifyRedis(err error) error {
	var re redis.Error
	if err == nil || service.IsPermanent(err) || !errors.As(err, &re) {
		return err
	}
	msg := re.Error()
	prefix, _, _ := strings.Cut(msg, " ")
	hint, ok := redisPermanent[prefix]
	if !ok || slices.ContainsFunc(redisPassingErr, func(s string) bool { return strings.Contains(msg, s) }) {
		return err
	}
	return service.PermanentTodo(err, hint)
}
