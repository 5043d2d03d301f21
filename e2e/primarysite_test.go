package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/status"
	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/internal/verify"
)

// At the primary site a cache-applier consumes the primary log and keeps
// the primary's own cache in step with the primary database: the same code
// and rules, no standby involved.
func TestPrimarySiteCache(t *testing.T) {
	e := newEnv(t)
	e.Cfg.Cache.Topic = e.Cfg.Kafka.PrimaryTopic
	e.Cfg.Metrics.Listen = "127.0.0.1:0"
	e.Cfg.Metrics.RPOInterval = 200 * time.Millisecond
	cfgPath := writeConfig(t, e.Cfg)
	producer := start(t, cfgPath, "producer")
	producer.waitTailing(e.Primary, e.Cfg.Producer.ServerID)
	cacheApplier := start(t, cfgPath, "cache-applier")
	mixedChanges(t, e)
	rules := cacherule.Compile(e.Cfg.Cache, e.Cfg.Primary.Databases)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		c, err := verify.CacheAgainst(context.Background(), e.Primary, e.Redis, rules, e.Cfg.Primary.Databases, nil)
		if err != nil {
			return false, err.Error()
		}
		return c.OK() && !exists(t, e, "user:email:u3@x") && exists(t, e, "user:email:moved@x"),
			fmt.Sprintf("primary cache against the primary: %d missing, %d wrong, %d orphans", len(c.Missing), len(c.Wrong), len(c.Orphans))
	})
	if exists(t, e, "sess:1") {
		t.Error("an evict rule wrote a key at the primary site")
	}
	cacheApplier.waitLog("Redis holds no lockstep marker")
	// Its RPO is measured against the primary log it reads.
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		n, ok := cacheApplier.gauge("lockstep_rpo_transactions", status.RPOCached)
		return ok && n == 0, fmt.Sprintf("caught up, lockstep_rpo_transactions{stage=cached} = %v (exported: %v)", n, ok)
	})

	// Nothing went through the standby.
	if n := testenv.Count(t, e.Standby, "information_schema.schemata WHERE schema_name = '"+e.DB+"'"); n != 0 {
		t.Errorf("the standby has database %s: the primary-site cache must not need it", e.DB)
	}
}

// Cache rules are held against the database at start: a key template or a
// projection naming a column the table lacks stops the cache-applier with
// the rule, the column and the table's columns; a rule that matches no
// table yet is a warning.
func TestCacheRulesThatDoNotFitTheDatabase(t *testing.T) {
	e := testenv.New(t)
	testenv.Exec(t, e.Standby, "CREATE DATABASE "+e.DB, "CREATE TABLE "+e.DB+".users (id INT PRIMARY KEY, email VARCHAR(50), name VARCHAR(50))")
	e.Cfg.Cache.Rules = []config.Rule{
		{Table: e.DB + ".later", Keys: []string{"later:{id}"}, Action: "evict"},
		{Table: e.DB + ".users", Keys: []string{"user:{id}", "user:mail:{mail}"}, Action: "refresh", Format: "hash", Columns: []string{"name", "nick"}},
	}
	log := start(t, writeConfig(t, e.Cfg), "cache-applier").waitExit(30 * time.Second)
	mustContain(t, log,
		fmt.Sprintf(`cache.rules[1] (%s.users): key template user:mail:{mail} names column \"mail\", which %s.users does not have (it has id, email, name)`, e.DB, e.DB),
		`columns lists \"nick\"`, "fix cache.rules and restart")

	e.Cfg.Cache.Rules = e.Cfg.Cache.Rules[:1]
	start(t, writeConfig(t, e.Cfg), "cache-applier").waitLog(fmt.Sprintf(`msg="cache rule matches no table yet" service=cache-applier rule="cache.rules[0] (%s.later)"`, e.DB))
}

// mixedChanges creates the tables of newEnv and writes inserts, updates (one
// of a key column: user 3's email becomes moved@x), a delete (user 4) and an
// update of a row an evict rule covers.
func mixedChanges(t *testing.T, e *testenv.Env) {
	createTables(t, e)
	writeBatch(t, e, 0, 50)
	testenv.Exec(t, e.Primary,
		"UPDATE "+e.DB+".users SET email = 'moved@x' WHERE id = 3",
		"DELETE FROM "+e.DB+".users WHERE id = 4",
		"INSERT INTO "+e.DB+".sessions VALUES (1, 'tok')",
		"UPDATE "+e.DB+".sessions SET token = 'tok2' WHERE id = 1",
	)
}
