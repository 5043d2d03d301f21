package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/internal/verify"
	"github.com/lockstep-dr/lockstep/schemas"
)

// newEnv is a test env with cache rules over the test database's tables:
// users (hash, two keys per row), items (JSON), sessions (evict only).
func newEnv(t *testing.T) *testenv.Env {
	e := testenv.New(t)
	withRules(e)
	return e
}

// withRules sets the rules newEnv describes.
func withRules(e *testenv.Env) {
	e.Cfg.Cache.Rules = []config.Rule{
		{Table: e.DB + ".users", Keys: []string{"user:{id}", "user:email:{email}"}, Action: "refresh", Format: "hash"},
		{Table: e.DB + ".items", Keys: []string{"item:{id}"}, Action: "refresh", Format: "json"},
		{Table: e.DB + ".sessions", Keys: []string{"sess:{id}"}, Action: "evict"},
	}
}

func createTables(t *testing.T, e *testenv.Env) {
	testenv.Exec(t, e.Primary,
		"CREATE DATABASE "+e.DB,
		"CREATE TABLE "+e.DB+".users (id INT PRIMARY KEY, email VARCHAR(100) NOT NULL UNIQUE, name VARCHAR(100) CHARACTER SET utf8mb4, balance DECIMAL(12,2), avatar VARBINARY(16))",
		"CREATE TABLE "+e.DB+".items (id BIGINT UNSIGNED PRIMARY KEY, title TEXT CHARACTER SET latin1, price DOUBLE, at DATETIME(6))",
		"CREATE TABLE "+e.DB+".sessions (id INT PRIMARY KEY, token VARCHAR(64))",
	)
}

// consistent waits until standby == primary and cache == standby.
func consistent(t *testing.T, e *testenv.Env, timeout time.Duration) {
	t.Helper()
	rules := cacherule.Compile(e.Cfg.Cache, e.Cfg.Primary.Databases)
	testenv.Eventually(t, timeout, func() (bool, string) {
		ctx := context.Background()
		tables, err := verify.Databases(ctx, e.Primary, e.Standby, e.Cfg.Primary.Databases, 0, nil)
		if err != nil {
			return false, err.Error()
		}
		for _, tb := range tables {
			if !tb.OK() {
				return false, fmt.Sprintf("table %+v differs", tb)
			}
		}
		c, err := verify.CacheAgainst(ctx, e.Standby, e.Redis, rules, e.Cfg.Primary.Databases, nil)
		if err != nil {
			return false, err.Error()
		}
		return c.OK(), fmt.Sprintf("cache: %d missing %v, %d wrong %v, %d orphans %v", len(c.Missing), c.Missing, len(c.Wrong), c.Wrong, len(c.Orphans), c.Orphans)
	})
}

func hget(t *testing.T, e *testenv.Env, key, field string) string {
	v, _ := e.Redis.HGet(context.Background(), e.Cfg.Cache.KeyPrefix+key, field).Result()
	return v
}

func exists(t *testing.T, e *testenv.Env, key string) bool {
	n, err := e.Redis.Exists(context.Background(), e.Cfg.Cache.KeyPrefix+key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestRowChangesReachStandbyAndCache(t *testing.T) {
	e := newEnv(t)
	startPipeline(t, e)
	createTables(t, e)
	db := e.DB
	testenv.Exec(t, e.Primary,
		"INSERT INTO "+db+".users VALUES (1, 'ada@example.com', 'Ada 🦊', 10.50, X'00FF0A')",
		"INSERT INTO "+db+".items VALUES (18446744073709551615, 'größe', 0.1, '2024-02-29 23:59:59.123456')",
		"INSERT INTO "+db+".sessions VALUES (1, 'abc')",
		// every byte value in a latin1 column
		"INSERT INTO "+db+".items VALUES (2, X'"+allBytes()+"', -0, NULL)",
	)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return hget(t, e, "user:1", "name") == "Ada 🦊" && exists(t, e, "item:18446744073709551615"), "user:1 and item key not in Redis yet"
	})
	if got := hget(t, e, "user:email:ada@example.com", "avatar"); got != "\x00\xff\n" {
		t.Fatalf("binary column in the cache = %q, want the raw bytes 00 ff 0a", got)
	}
	// An application filled the session key; the evict rule must remove it.
	if err := e.Redis.Set(context.Background(), e.Cfg.Cache.KeyPrefix+"sess:1", "stale", 0).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Exec(t, e.Primary,
		"UPDATE "+db+".users SET email = 'lovelace@example.com', balance = 11.00 WHERE id = 1",
		"UPDATE "+db+".sessions SET token = 'def' WHERE id = 1",
	)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return hget(t, e, "user:email:lovelace@example.com", "balance") == "11.00" &&
				!exists(t, e, "user:email:ada@example.com") && !exists(t, e, "sess:1"),
			"new email key, eviction of the old one and of sess:1 not seen yet"
	})
	consistent(t, e, 30*time.Second)

	testenv.Exec(t, e.Primary, "DELETE FROM "+db+".users WHERE id = 1", "DELETE FROM "+db+".items")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return !exists(t, e, "user:1") && !exists(t, e, "user:email:lovelace@example.com") && !exists(t, e, "item:18446744073709551615"),
			"deleted rows still cached"
	})
	consistent(t, e, 30*time.Second)
	if n := testenv.Count(t, e.Standby, db+".users"); n != 0 {
		t.Fatalf("standby users has %d rows after the delete, want 0", n)
	}

	if n := validRecords(t, e); n < 9 {
		t.Fatalf("primary log has %d records, want at least 9", n)
	}
}

// validRecords checks that what the services really published matches the
// JSON Schemas, and that the standby log holds as many records as the
// primary log, besides the changes the standby made itself; it returns
// that number.
func validRecords(t *testing.T, e *testenv.Env) int {
	t.Helper()
	prim, stby := records(t, e, e.Cfg.Kafka.PrimaryTopic), records(t, e, e.Cfg.Kafka.StandbyTopic)
	made := 0
	for _, kr := range stby {
		if r, err := schemas.Decode(kr.Value); err == nil && r.Standby != nil && r.Standby.Cascade != nil {
			made++
		}
	}
	if len(stby)-made != len(prim) {
		t.Fatalf("primary log has %d records, standby log %d and %d changes the standby made: want the same number", len(prim), len(stby)-made, made)
	}
	for _, r := range prim {
		if err := schemas.ValidatePrimary(r.Value); err != nil {
			t.Fatalf("primary record at offset %d does not match primary.schema.json: %v\n%.2000s", r.Offset, err, r.Value)
		}
	}
	for _, r := range stby {
		if err := schemas.ValidateStandby(r.Value); err != nil {
			t.Fatalf("standby record does not match standby.schema.json: %v\n%.2000s", err, r.Value)
		}
	}
	return len(prim)
}

// A transaction of 50 rows over two tables is applied all at once: a reader
// of the standby never sees part of it.
func TestTransactionAppliedAtomically(t *testing.T) {
	e := newEnv(t)
	startPipeline(t, e)
	createTables(t, e)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return testenv.Count(t, e.Standby, e.DB+".items") == 0, "tables not on the standby yet"
	})

	const txns, perTable = 6, 25
	var (
		stop     atomic.Bool
		partial  atomic.Value
		observed atomic.Int64
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		q := fmt.Sprintf("SELECT (SELECT COUNT(*) FROM %[1]s.users) + (SELECT COUNT(*) FROM %[1]s.items)", e.DB)
		for !stop.Load() {
			var n int
			if err := e.Standby.QueryRow(q).Scan(&n); err != nil {
				partial.Store(err.Error())
				return
			}
			observed.Add(1)
			if n%(2*perTable) != 0 {
				partial.Store(fmt.Sprintf("saw %d rows, not a multiple of %d", n, 2*perTable))
				return
			}
		}
	}()
	for i := range txns {
		tx, err := e.Primary.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for j := range perTable {
			id := i*perTable + j
			if _, err := tx.Exec(fmt.Sprintf("INSERT INTO %s.users VALUES (?, ?, 'n', 1, NULL)", e.DB), id, fmt.Sprintf("u%d@x", id)); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(fmt.Sprintf("INSERT INTO %s.items VALUES (?, 't', 1.5, NOW(6))", e.DB), id); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n := testenv.Count(t, e.Standby, e.DB+".items")
		return n == txns*perTable, fmt.Sprintf("standby has %d items", n)
	})
	stop.Store(true)
	wg.Wait()
	if p := partial.Load(); p != nil {
		t.Fatalf("observer saw part of a transaction: %v", p)
	}
	if observed.Load() < 10 {
		t.Fatalf("observer only looked %d times: the test proved nothing", observed.Load())
	}
	consistent(t, e, 30*time.Second)
}

// A transaction rolled back on the primary appears in no topic, not on the
// standby and not in the cache.
func TestRolledBackTransactionNeverAppears(t *testing.T) {
	e := newEnv(t)
	startPipeline(t, e)
	createTables(t, e)
	tx, err := e.Primary.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO " + e.DB + ".users VALUES (7, 'ghost@example.com', 'ghost', 0, NULL)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	testenv.Exec(t, e.Primary, "INSERT INTO "+e.DB+".users VALUES (8, 'real@example.com', 'real', 0, NULL)")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return exists(t, e, "user:8"), "the committed row that follows has not reached the cache"
	})
	for _, topic := range []string{e.Cfg.Kafka.PrimaryTopic, e.Cfg.Kafka.StandbyTopic} {
		for _, r := range records(t, e, topic) {
			if strings.Contains(string(r.Value), "ghost") {
				t.Fatalf("rolled-back row published to %s: %s", topic, r.Value)
			}
		}
	}
	var n int
	if err := e.Standby.QueryRow("SELECT COUNT(*) FROM " + e.DB + ".users WHERE id = 7").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rolled-back row on the standby: count %d, err %v", n, err)
	}
	if exists(t, e, "user:7") {
		t.Fatal("rolled-back row in the cache")
	}
	consistent(t, e, 30*time.Second)
}

func allBytes() string {
	var b strings.Builder
	for i := range 256 {
		fmt.Fprintf(&b, "%02X", i)
	}
	return b.String()
}
