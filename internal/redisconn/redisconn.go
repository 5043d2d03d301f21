// Package redisconn opens the configured Redis, a single server or a Redis
// Cluster, the one way every command does, and walks every master of it.
package redisconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/internal/config"
)

// Open connects to the Redis of c (TLS, ACL user, cluster or not) and
// checks that it answers.
func Open(ctx context.Context, c config.Redis) (redis.UniversalClient, error) {
	addrs := c.Addresses()
	tlsCfg, err := c.TLS.Build("redis.tls", addrs[0])
	if err != nil {
		return nil, err
	}
	var rdb redis.UniversalClient
	if c.Cluster {
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Username: c.User, Password: c.Password, TLSConfig: tlsCfg,
			NewClient: func(o *redis.Options) *redis.Client {
				// Each node's certificate names that node, not the seed.
				if o.TLSConfig != nil {
					o.TLSConfig = serverName(o.TLSConfig, o.Addr)
				}
				return redis.NewClient(o)
			}})
	} else {
		rdb = redis.NewClient(&redis.Options{Addr: addrs[0], Username: c.User, Password: c.Password, DB: c.DB, TLSConfig: tlsCfg})
	}
	if err := EachMaster(ctx, rdb, func(ctx context.Context, m *redis.Client) error { return m.Ping(ctx).Err() }); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("connect to Redis %s (redis.address): %w", c.Address, err)
	}
	return rdb, nil
}

func serverName(t *tls.Config, addr string) *tls.Config {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return t
	}
	t = t.Clone()
	t.ServerName = host
	return t
}

// EachMaster calls fn on every master: the one server, or each master of a
// cluster (concurrently; the first error is returned).
func EachMaster(ctx context.Context, rdb redis.UniversalClient, fn func(context.Context, *redis.Client) error) error {
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	default:
		return fmt.Errorf("redis client %T: want a single server or a cluster", rdb)
	}
}

// EachNode calls fn on every node: the one server, or every master and
// replica of a cluster (concurrently; the first error is returned).
func EachNode(ctx context.Context, rdb redis.UniversalClient, fn func(context.Context, *redis.Client) error) error {
	if c, ok := rdb.(*redis.ClusterClient); ok {
		return c.ForEachShard(ctx, fn)
	}
	return EachMaster(ctx, rdb, fn)
}

// MasterFor is the master that holds key: the one server, or the master
// of the key's slot in the cluster's current topology.
func MasterFor(ctx context.Context, rdb redis.UniversalClient, key string) (*redis.Client, error) {
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return c.MasterForKey(ctx, key)
	case *redis.Client:
		return c, nil
	default:
		return nil, fmt.Errorf("redis client %T: want a single server or a cluster", rdb)
	}
}

// Scan hands fn every key matching pattern on every master, one call at a
// time.
func Scan(ctx context.Context, rdb redis.UniversalClient, pattern string, fn func(key string) error) error {
	var mu sync.Mutex
	return EachMaster(ctx, rdb, func(ctx context.Context, m *redis.Client) error {
		iter := m.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			err := fn(iter.Val())
			mu.Unlock()
			if err != nil {
				return err
			}
		}
		if err := iter.Err(); err != nil {
			return fmt.Errorf("scan %s for %s: %w", m.Options().Addr, pattern, err)
		}
		return nil
	})
}
