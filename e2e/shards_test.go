package e2e

import (
	"database/sql"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// Two sharded primaries into one standby site: each shard (the shared
// primary, and a primary of the test's own) has its own producer, primary
// log, storage-applier and cache group, all from one config of shards
// (each process names its shard), into the one standby database (disjoint
// databases) and the one Redis. Both shards' rows reach the standby and
// the cache, and status reports every shard's stages and RPO.
func TestShardsIntoOneStandbySite(t *testing.T) {
	e := testenv.New(t)
	otherAddr := testenv.OwnServer(t, 3)
	other, err := mysql.Open(t.Context(), "primary", config.Database{Address: otherAddr, User: e.Cfg.Primary.User})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() }) // after the databases are dropped
	type primary struct {
		db   *sql.DB
		addr string
	}
	primaries := map[string]primary{"a": {e.Primary, e.Cfg.Primary.Address}, "b": {other, otherAddr}}
	cfg := *e.Cfg
	cfg.Shards = map[string]config.Shard{}
	for name, p := range primaries {
		db := e.DB + "_" + name
		cfg.Shards[name] = config.Shard{Address: p.addr, Databases: []string{db}}
		cfg.Cache.Rules = append(cfg.Cache.Rules, config.Rule{Table: db + ".users", Keys: []string{name + ":user:{id}"}, Action: "refresh", Format: "hash"})
		t.Cleanup(func() { testenv.Exec(t, e.Standby, "DROP DATABASE IF EXISTS "+db) })
		t.Cleanup(func() { testenv.Exec(t, p.db, "DROP DATABASE IF EXISTS "+db) })
	}
	path := writeConfig(t, &cfg)
	shards := map[string]*testenv.Env{}
	for name, p := range primaries {
		for _, service := range []string{"producer", "storage-applier", "cache-applier"} {
			s := start(t, path, service, "--set", "shard="+name)
			if service == "producer" {
				s.waitTailing(p.db, cfg.Producer.ServerID)
			}
		}
		sc, err := cfg.ForShard(name)
		if err != nil {
			t.Fatal(err)
		}
		view := *e
		view.Cfg, view.Primary = sc, p.db
		shards[name] = &view
		db := sc.Primary.Databases[0]
		testenv.Exec(t, p.db, "CREATE DATABASE "+db,
			"CREATE TABLE "+db+".users (id INT PRIMARY KEY, email VARCHAR(100) NOT NULL UNIQUE, name VARCHAR(100), balance DECIMAL(12,2), avatar VARBINARY(16))",
			fmt.Sprintf("INSERT INTO %s.users SELECT seq, CONCAT('%s', seq, '@x'), '%s', seq, NULL FROM %s", db, name, name, e.Seq(100)))
	}
	for name, s := range shards {
		consistent(t, s, time.Minute)
		if n := testenv.Count(t, e.Standby, s.Cfg.Primary.Databases[0]+".users"); n != 100 {
			t.Fatalf("shard %s: %d users on the standby, want 100", name, n)
		}
	}
	out, err := exec.Command(filepath.Join(binDir, "storage-applier"), "status", "--config", path).CombinedOutput()
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	t.Logf("status:\n%s", out)
	mustContain(t, string(out), "a producer", "a storage-applier", "a cache-applier", "b producer", "b storage-applier", "b cache-applier", e.DB+".primary-b", e.DB+"-cache-b")
	// A service of a config of shards must be told which one it serves.
	mustContain(t, start(t, path, "producer").waitExit(30*time.Second), "say which one this process serves", "a, b")
}
