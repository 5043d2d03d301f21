package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// Two standby sites fed from one primary log, each with its own
// storage-applier (applier.name), standby database, standby log, Redis and
// cache group. One site's storage-applier hangs (SIGSTOP: it holds its
// connections and reads nothing, the worst case for what the sites share)
// while writes go on: the other site still has every batch in its
// database and cache within 10 s. Continued, the hung site catches up, and
// both end equal to the primary.
func TestFanOutToTwoSites(t *testing.T) {
	e := testenv.New(t)
	withRules(e)
	startPipeline(t, e)
	createTables(t, e)
	second := siteOf(t, e, "site2", testenv.OwnServer(t, 3), 1)
	p2 := &pipeline{cfgPath: writeConfig(t, second.Cfg)}
	p2.applier = start(t, p2.cfgPath, "storage-applier")
	p2.cacheApplier = start(t, p2.cfgPath, "cache-applier")
	writeBatch(t, e, 0, 20)
	consistent(t, e, time.Minute)
	consistent(t, second, time.Minute)

	signal(t, p2.applier.cmd.Process.Pid, syscall.SIGSTOP)
	continued := false
	t.Cleanup(func() {
		if !continued {
			signal(t, p2.applier.cmd.Process.Pid, syscall.SIGCONT)
		}
	})
	for i := range 5 {
		writeBatch(t, e, 20+10*i, 10)
		consistent(t, e, 10*time.Second)
	}
	if n := testenv.Count(t, second.Standby, e.DB+".users"); n >= 70 {
		t.Fatalf("the hung site's standby has %d users: it was not hung", n)
	}
	signal(t, p2.applier.cmd.Process.Pid, syscall.SIGCONT)
	continued = true
	consistent(t, second, time.Minute)
}

// siteOf is another standby site of e's primary log: its standby database
// at addr, Redis database db, and its own applier name, standby log and
// cache group, named after name.
func siteOf(t *testing.T, e *testenv.Env, name, addr string, db int) *testenv.Env {
	t.Helper()
	cfg := *e.Cfg
	cfg.Standby.Address, cfg.Redis.DB = addr, db
	cfg.Kafka.StandbyTopic, cfg.Applier.Name, cfg.Cache.Group = e.DB+"."+name+".standby", e.DB+"-"+name, e.DB+"-"+name+"-cache"
	standby, err := mysql.Open(context.Background(), "standby", cfg.Standby)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Address, DB: db})
	t.Cleanup(func() {
		deleteKeys(rdb, cfg.Cache.KeyPrefix)
		rdb.Close()
		standby.Close()
	})
	s := *e
	s.Cfg, s.Standby, s.Redis = &cfg, standby, rdb
	return &s
}
