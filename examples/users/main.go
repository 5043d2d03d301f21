// Command users is a small application on lockstep: it writes users through
// the primary database and reads them through the standby's Redis cache
// with lockstep's read-through helper (package cache), filling a miss from
// the standby database. The demo runs it; it exits non-zero if a change
// never shows through the cache, or a filled row differs from the standby's.
//
//	go run ./examples/users -primary 127.0.0.1:3307 -standby 127.0.0.1:3308 -redis 127.0.0.1:6380
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/cache"
)

func main() {
	primary := flag.String("primary", env("LOCKSTEP_PRIMARY_ADDRESS", "127.0.0.1:3307"), "primary MariaDB/MySQL (writes)")
	standby := flag.String("standby", env("LOCKSTEP_STANDBY_ADDRESS", "127.0.0.1:3308"), "standby MariaDB/MySQL (fills)")
	redisAddr := flag.String("redis", env("LOCKSTEP_REDIS_ADDRESS", "127.0.0.1:6380"), "standby Redis, kept by lockstep (a cluster: seed nodes, comma-separated)")
	cluster := flag.Bool("redis-cluster", os.Getenv("LOCKSTEP_REDIS_CLUSTER") == "true", "the Redis is a Redis Cluster")
	user := flag.String("user", "root", "database user")
	prefix := flag.String("prefix", "", "cache.key_prefix of the lockstep config")
	database := flag.String("database", "shop", "the database holding the users table")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u := &users{primary: open(*primary, *user), standby: open(*standby, *user), rdb: redis.NewUniversalClient(&redis.UniversalOptions{Addrs: strings.Split(*redisAddr, ","), IsClusterMode: *cluster}),
		table: "`" + *database + "`.users", prefix: *prefix}
	if err := run(ctx, u); err != nil {
		fmt.Fprintln(os.Stderr, "users:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func open(addr, user string) *sql.DB {
	c := mysql.NewConfig()
	c.Net, c.Addr, c.User = "tcp", addr, user
	c.Params = map[string]string{"time_zone": "'+00:00'"} // as lockstep writes the standby
	db, _ := sql.Open("mysql", c.FormatDSN())             // cannot fail: the driver is registered
	return db
}

// users reads and writes the users table of the demo's schema (cache rule:
// hash keys user:{id}).
type users struct {
	primary, standby *sql.DB
	rdb              redis.UniversalClient
	table, prefix    string
	misses           int
}

var errNoUser = errors.New("no such user on the standby yet")

// get reads a user through the cache; a miss loads the standby's row.
func (u *users) get(ctx context.Context, id int64) (map[string]string, error) {
	return cache.GetHash(ctx, u.rdb, u.prefix+"user:"+strconv.FormatInt(id, 10), func(ctx context.Context) (cache.Value, error) {
		u.misses++
		row, err := u.load(ctx, id)
		return cache.Value{Hash: row}, err
	})
}

// load reads one row as the cache rule writes it: every column as text,
// NULLs left out.
func (u *users) load(ctx context.Context, id int64) (map[string]string, error) {
	rows, err := u.standby.QueryContext(ctx, fmt.Sprintf("SELECT * FROM %s WHERE id = %d", u.table, id))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, errNoUser
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	row := make(map[string]string, len(cols))
	for i, c := range cols {
		if vals[i] != nil {
			row[c] = string(vals[i])
		}
	}
	return row, nil
}

// await reads the user through the cache until its name is want; it
// returns how long that took.
func (u *users) await(ctx context.Context, id int64, want string) (time.Duration, error) {
	start := time.Now()
	for {
		h, err := u.get(ctx, id)
		if err == nil && h["name"] == want {
			return time.Since(start), nil
		}
		if err != nil && !errors.Is(err, errNoUser) {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("user %d never read back with name %q through the cache (last %v, %v)", id, want, h["name"], err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func run(ctx context.Context, u *users) error {
	res, err := u.primary.ExecContext(ctx, "INSERT INTO "+u.table+" (email, name, updated) VALUES (CONCAT('example-', UUID(), '@example.com'), 'Grace', NOW(6))")
	if err != nil {
		return fmt.Errorf("write a user on the primary (is the demo schema there? run scripts/demo.sh): %w", err)
	}
	id, _ := res.LastInsertId()
	took, err := u.await(ctx, id, "Grace")
	if err != nil {
		return err
	}
	fmt.Printf("example: inserted user %d on the primary; read through the standby cache after %s\n", id, took.Round(time.Millisecond))

	if _, err := u.primary.ExecContext(ctx, "UPDATE "+u.table+" SET name = 'Grace Hopper', updated = NOW(6) WHERE id = ?", id); err != nil {
		return err
	}
	if took, err = u.await(ctx, id, "Grace Hopper"); err != nil {
		return err
	}
	fmt.Printf("example: renamed user %d on the primary; the standby cache served the new name after %s\n", id, took.Round(time.Millisecond))

	// An expired key: the next read misses and fills from the standby.
	u.rdb.Del(ctx, u.prefix+"user:"+strconv.FormatInt(id, 10))
	misses := u.misses
	h, err := u.get(ctx, id)
	if err != nil {
		return err
	}
	want, err := u.load(ctx, id)
	if err != nil {
		return err
	}
	for c, v := range want {
		if h[c] != v {
			return fmt.Errorf("user %d column %s: the cache served %q, the standby holds %q", id, c, h[c], v)
		}
	}
	fmt.Printf("example: user %d evicted from Redis; %d miss filled it from the standby through cache.Fill; %d cache reads in all missed\n", id, u.misses-misses, u.misses)
	return nil
}
