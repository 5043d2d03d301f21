// Package cache is for applications that read through a Redis cache that
// lockstep keeps: it fills a missing key from the database without ever
// bringing back data that a change has replaced meanwhile.
//
// The danger it guards against: a read-through fill reads the database,
// a change commits and lockstep evicts or rewrites the key, then the fill
// writes what it read. The cache now holds old data, and nothing will evict
// it. lockstep keeps, beside every key it writes or evicts, a version key
// (VersionKey) that outlives an eviction for cache.tombstone_ttl. A fill
// reads that version before reading the database and writes only if the key
// is still absent and the version has not moved: any change that reached
// the key in between makes the fill a no-op.
//
// Applications in other languages do the same with three commands:
//
//	GET <version key>                  -> v ('' when nil), before the database read
//	(read the row from the database)
//	EVAL <FillScript> 2 <key> <version key> <v> <ttl seconds> h <field> <value> ...
//	EVAL <FillScript> 2 <key> <version key> <v> <ttl seconds> s <value>
//
// where <version key> is VersionKey(key): lockstep:v:{<key>} for most keys
// (see VersionKey for the rest), in the key's own Redis Cluster slot.
//
// The fill must read the database the cache-applier follows (the standby's
// at the standby site, the primary's for the primary site's cache), and
// must finish within cache.tombstone_ttl.
package cache

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// FillScript is the Lua script of a guarded fill (see the package doc).
//
//go:embed fill.lua
var FillScript string

var fill = redis.NewScript(FillScript)

// Value is what a fill writes: a hash (one field per column, as a hash rule
// writes) or, when Hash is nil, the string String (as a json rule writes).
type Value struct {
	Hash   map[string]string
	String string
	// TTL is the key's expiry; 0 for none.
	TTL time.Duration
}

// Fill fills key after a cache miss. It notes the key's version, calls load
// (which reads the database), and writes what load returned only if the key
// is still absent and no change has reached it since. It returns the loaded
// value and whether it was written. An error from load is returned as is,
// and nothing is written.
func Fill(ctx context.Context, rdb redis.Cmdable, key string, load func(context.Context) (Value, error)) (Value, bool, error) {
	seen, err := rdb.Get(ctx, VersionKey(key)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Value{}, false, fmt.Errorf("read the version of %s: %w", key, err)
	}
	v, err := load(ctx)
	if err != nil {
		return Value{}, false, err
	}
	args := []any{seen, strconv.FormatInt(int64(v.TTL/time.Second), 10)}
	if v.Hash != nil {
		args = append(args, "h")
		for f, val := range v.Hash {
			args = append(args, f, val)
		}
	} else {
		args = append(args, "s", v.String)
	}
	n, err := fill.Run(ctx, rdb, []string{key, VersionKey(key)}, args...).Int()
	if err != nil {
		return v, false, fmt.Errorf("fill %s: %w", key, err)
	}
	return v, n == 1, nil
}

// GetHash reads a hash key, filling it through load on a miss.
func GetHash(ctx context.Context, rdb redis.Cmdable, key string, load func(context.Context) (Value, error)) (map[string]string, error) {
	h, err := rdb.HGetAll(ctx, key).Result()
	if err != nil || len(h) > 0 {
		return h, err
	}
	v, _, err := Fill(ctx, rdb, key, load)
	return v.Hash, err
}

// GetString reads a string key (a json rule's), filling it through load on
// a miss.
func GetString(ctx context.Context, rdb redis.Cmdable, key string, load func(context.Context) (Value, error)) (string, error) {
	s, err := rdb.Get(ctx, key).Result()
	if !errors.Is(err, redis.Nil) {
		return s, err
	}
	v, _, err := Fill(ctx, rdb, key, load)
	return v.String, err
}
