package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// Each service as a user with only the privileges the README's grants give
// it: the pipeline carries inserts, updates, deletes and DDL, and no
// password shows in what the services printed.
func TestServicesRunWithLeastPrivilege(t *testing.T) {
	e := newEnv(t)
	db, pw := mysql.Quote(e.DB), "pw-"+e.DB
	// The global privileges, by their names in each flavour: reading the
	// binlog; writing to a read_only standby and creating objects with the
	// primary's definer.
	binlog, standby := "REPLICATION SLAVE, BINLOG MONITOR", "READ_ONLY ADMIN, SET USER"
	if e.Flavor == mysql.MySQL {
		// SYSTEM_USER: MySQL lets only its holders name a definer that
		// holds it, as the test's root does.
		binlog, standby = "REPLICATION SLAVE, REPLICATION CLIENT", "CONNECTION_ADMIN, SET_ANY_DEFINER, ALLOW_NONEXISTENT_DEFINER, SYSTEM_USER"
	}
	user := func(name string) string { return fmt.Sprintf("'%s_%s'@'127.0.0.1'", e.DB, name) }
	testenv.Exec(t, e.Standby, mysql.CheckpointSQL)
	grants := map[string][]string{
		"primary": {
			"CREATE USER " + user("producer") + " IDENTIFIED BY '" + pw + "'",
			"GRANT " + binlog + " ON *.* TO " + user("producer"),
			"GRANT SELECT ON " + db + ".* TO " + user("producer"),
			"CREATE USER " + user("nobinlog") + " IDENTIFIED BY '" + pw + "'",
			"GRANT SELECT ON " + db + ".* TO " + user("nobinlog"),
		},
		"standby": {
			"CREATE USER " + user("applier") + " IDENTIFIED BY '" + pw + "'",
			"GRANT ALL ON " + db + ".* TO " + user("applier"),
			"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON lockstep.* TO " + user("applier"),
			"GRANT " + standby + " ON *.* TO " + user("applier"),
			"CREATE USER " + user("cache") + " IDENTIFIED BY '" + pw + "'",
			"GRANT SELECT ON " + db + ".* TO " + user("cache"),
			"GRANT SELECT ON lockstep.checkpoint TO " + user("cache"),
		},
	}
	testenv.Exec(t, e.Primary, grants["primary"]...)
	testenv.Exec(t, e.Standby, grants["standby"]...)
	t.Cleanup(func() {
		e.Primary.Exec("DROP USER IF EXISTS " + user("producer") + ", " + user("nobinlog"))
		e.Standby.Exec("DROP USER IF EXISTS " + user("applier") + ", " + user("cache"))
	})
	// Redis: the cache-applier's keys only, no admin or dangerous command
	// but INFO (the eviction check), as README, Security grants.
	ctx := context.Background()
	redisUser := e.DB + "_cache"
	if err := e.Redis.Do(ctx, "ACL", "SETUSER", redisUser, "on", ">"+pw, "~"+e.Cfg.Cache.KeyPrefix+"*", "~lockstep:*",
		"resetchannels", "-@all", "+@read", "+@write", "+@keyspace", "+@scripting", "+@connection", "-@dangerous", "+info").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Redis.Do(ctx, "ACL", "DELUSER", redisUser) })

	cfg := *e.Cfg
	cfg.Primary.User, cfg.Primary.Password = e.DB+"_producer", pw
	cfg.Standby.Password, cfg.Redis.User, cfg.Redis.Password = pw, redisUser, pw
	p := &pipeline{}
	cfg.Standby.User = e.DB + "_applier"
	p.cfgPath = writeConfig(t, &cfg)
	p.producer = start(t, p.cfgPath, "producer")
	p.producer.waitTailing(e.Primary, e.Cfg.Producer.ServerID)
	p.applier = start(t, p.cfgPath, "storage-applier")
	cfg.Standby.User = e.DB + "_cache"
	p.cacheApplier = start(t, writeConfig(t, &cfg), "cache-applier")

	mixedChanges(t, e)
	testenv.Exec(t, e.Primary, "ALTER TABLE "+e.DB+".items ADD COLUMN note VARCHAR(20) DEFAULT 'n'",
		// objects whose definer is another account
		"CREATE VIEW "+e.DB+".cheap AS SELECT id FROM "+e.DB+".items WHERE price < 10",
		"CREATE TRIGGER "+e.DB+".stamp BEFORE INSERT ON "+e.DB+".sessions FOR EACH ROW SET NEW.token = COALESCE(NEW.token, 'none')",
		"INSERT INTO "+e.DB+".sessions (id) VALUES (77)")
	consistent(t, e, 60*time.Second)
	for _, s := range []*proc{p.producer, p.applier, p.cacheApplier} {
		if done, err := s.exited(); done {
			t.Errorf("%s exited: %v", s.name, err)
		}
		b, _ := os.ReadFile(s.log)
		if strings.Contains(string(b), pw) {
			t.Errorf("%s printed its password", s.name)
		}
	}

	// A producer user that may not read the binlog is told what to grant.
	cfg.Primary.User = e.DB + "_nobinlog"
	log := start(t, writeConfig(t, &cfg), "producer").waitExit(30 * time.Second)
	mustContain(t, log, "the primary user "+e.DB+"_nobinlog may not read the binlog; GRANT "+binlog+" ON *.* TO it")
}
