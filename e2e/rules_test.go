package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

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
