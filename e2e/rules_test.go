package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/cache"
	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// Rules as applications write them: a table pattern, a key over two
// columns, a projection, a TTL; a table no rule matches leaves no key.
func TestRulePatternsProjectionsAndTTL(t *testing.T) {
	e := testenv.New(t)
	e.Cfg.Cache.Rules = []config.Rule{
		{Table: e.DB + ".it*", Keys: []string{"it:{id}"}, Action: "refresh", Format: "json", Columns: []string{"id", "title"}, TTL: time.Hour},
		{Table: e.DB + ".users", Keys: []string{"u:{id}:{email}"}, Action: "refresh", Format: "hash", Columns: []string{"name"}},
	}
	startPipeline(t, e)
	createTables(t, e)
	writeBatch(t, e, 0, 5)
	testenv.Exec(t, e.Primary, "INSERT INTO "+e.DB+".sessions VALUES (1, 'tok')")
	consistent(t, e, 60*time.Second)
	ctx := context.Background()
	p := e.Cfg.Cache.KeyPrefix

	var item map[string]any
	if err := json.Unmarshal([]byte(e.Redis.Get(ctx, p+"it:3").Val()), &item); err != nil {
		t.Fatalf("it:3: %v", err)
	}
	if len(item) != 2 || item["id"] != "3" || item["title"] != "item" {
		t.Errorf("it:3 = %v, want only id and title", item)
	}
	if ttl := e.Redis.TTL(ctx, p+"it:3").Val(); ttl < 59*time.Minute || ttl > time.Hour {
		t.Errorf("TTL of it:3 = %s, want about 1h", ttl)
	}
	if fields := e.Redis.HKeys(ctx, p+"u:3:u3@x").Val(); !slices.Equal(fields, []string{"name"}) {
		t.Errorf("u:3:u3@x fields = %v, want [name]", fields)
	}
	if ttl := e.Redis.TTL(ctx, p+"u:3:u3@x").Val(); ttl != -1 {
		t.Errorf("TTL of u:3:u3@x = %s, want none", ttl)
	}
	if keys := e.Redis.Keys(ctx, p+"*").Val(); len(keys) != 10 {
		t.Errorf("%d keys (%v), want 5 items and 5 users: no key for sessions", len(keys), keys)
	}
}

// A key template whose columns are not unique would let two rows share a
// key: the cache-applier refuses the rule, at start and after a DDL that
// drops the unique index, naming the rule, its columns and the table's
// unique indexes. Declared shared (evict only), the rule is taken, and the
// change of one row evicts the key the other row shares.
func TestRuleWhoseKeyIsNotUniqueIsRefused(t *testing.T) {
	e := testenv.New(t)
	shared := config.Rule{Table: e.DB + ".people", Keys: []string{"person:city:{city}"}, Action: "refresh", Format: "hash"}
	e.Cfg.Cache.Rules = []config.Rule{shared}
	p := startPipeline(t, e)
	testenv.Exec(t, e.Primary, "CREATE DATABASE "+e.DB,
		"CREATE TABLE "+e.DB+".people (id INT PRIMARY KEY, city VARCHAR(20), nick VARCHAR(20), UNIQUE KEY (nick, city))")
	// The table comes after the cache-applier started: it is checked when
	// the cache is built from the standby or, if built before, at the CREATE.
	mustContain(t, p.cacheApplier.waitExit(60*time.Second), "cache.rules[0] ("+e.DB+".people): key template person:city:{city} is not unique in "+e.DB+".people",
		"its columns (city) hold neither the primary key nor a UNIQUE index (its unique indexes: (id), (nick, city))", "shared_key: true with action: evict")

	// Declared shared: evict only, and taken, at start.
	e.Cfg.Cache.Rules[0].Action, e.Cfg.Cache.Rules[0].Format, e.Cfg.Cache.Rules[0].SharedKey = "evict", "", true
	// A unique key over city and more is refused no more once the key names it.
	e.Cfg.Cache.Rules = append(e.Cfg.Cache.Rules, config.Rule{Table: e.DB + ".people", Keys: []string{"person:{nick}:{city}"}, Action: "refresh", Format: "hash"})
	p.cfgPath = writeConfig(t, e.Cfg)
	p.cacheApplier = start(t, p.cfgPath, "cache-applier")
	testenv.Exec(t, e.Primary, "INSERT INTO "+e.DB+".people VALUES (1, 'oslo', 'a'), (2, 'oslo', 'b')")
	consistent(t, e, 60*time.Second)
	ctx := context.Background()
	if err := e.Redis.Set(ctx, e.Cfg.Cache.KeyPrefix+"person:city:oslo", "filled by the application", 0).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Exec(t, e.Primary, "UPDATE "+e.DB+".people SET nick = 'c' WHERE id = 2")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return !exists(t, e, "person:city:oslo") && exists(t, e, "person:c:oslo"), "the shared key was not evicted"
	})

	// The unique index goes: the refresh rule over it is refused.
	testenv.Exec(t, e.Primary, "ALTER TABLE "+e.DB+".people DROP INDEX nick")
	mustContain(t, p.cacheApplier.waitExit(60*time.Second), "after DDL", "DROP INDEX nick",
		"key template person:{nick}:{city} is not unique", "its unique indexes: (id)")
}

// Redis replies that every retry would get again stop the cache-applier
// with the key and the fix, instead of retrying forever: a version key
// another writer made a hash (WRONGTYPE), and a Redis user that may not
// touch lockstep's own keys (NOPERM).
func TestRedisErrorsThatRepeatStopTheCacheApplier(t *testing.T) {
	t.Run("WRONGTYPE", func(t *testing.T) {
		e := newEnv(t)
		p := startPipeline(t, e)
		createTables(t, e)
		key := e.Cfg.Cache.KeyPrefix + "user:1"
		if err := e.Redis.HSet(context.Background(), cache.VersionKey(key), "not", "a version").Err(); err != nil {
			t.Fatal(err)
		}
		testenv.Exec(t, e.Primary, "INSERT INTO "+e.DB+".users VALUES (1, 'a@x', 'a', 1, NULL)")
		mustContain(t, p.cacheApplier.waitExit(60*time.Second), "WRONGTYPE", "(version key "+cache.VersionKey(key)+" of "+key+")", "give lockstep its own key_prefix")
	})
	t.Run("NOPERM", func(t *testing.T) {
		e := newEnv(t)
		ctx := context.Background()
		user := e.DB + "-noperm"
		// Its own keys, but not lockstep's.
		if err := e.Redis.Do(ctx, "ACL", "SETUSER", user, "on", ">pw", "~"+e.Cfg.Cache.KeyPrefix+"*", "+@all").Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Redis.Do(ctx, "ACL", "DELUSER", user) })
		e.Cfg.Redis.User, e.Cfg.Redis.Password = user, "pw"
		p := startPipeline(t, e)
		createTables(t, e)
		mustContain(t, p.cacheApplier.waitExit(60*time.Second), "NOPERM", "lockstep:cache:"+e.Cfg.Cache.Group, "grant it the commands and keys README, Security lists")
	})
}
