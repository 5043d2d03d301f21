package cacheapply

import (
	"testing"

	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/schemas"
)

func s(v string) *string { return &v }

func TestPlanEvictsTheOldKeyWhenAKeyColumnChanges(t *testing.T) {
	rules := cacherule.Compile(config.Cache{KeyPrefix: "p:", Rules: []config.Rule{
		{Table: "shop.users", Keys: []string{"user:{id}", "user:email:{email}"}, Action: "refresh", Format: "hash"},
		{Table: "shop.*", Keys: []string{"any:{id}"}, Action: "evict"},
		{Table: "other.users", Keys: []string{"other:{id}"}, Action: "evict"}, // not replicated
	}}, []string{"shop", "sh?p2"})
	rec := &schemas.Record{
		Op: schemas.OpUpdate, Database: "shop", Table: "users",
		Columns: []schemas.Column{{Name: "id", Type: "int", Key: true}, {Name: "email", Type: "varchar"}, {Name: "note", Type: "text"}},
		Before:  schemas.Row{"id": s("1"), "email": s("a@x"), "note": nil},
		After:   schemas.Row{"id": s("1"), "email": s("b@x"), "note": s("hi")},
	}
	rs := rules.Match("shop", "users")
	if len(rs) != 2 {
		t.Fatalf("%d rules match shop.users, want 2", len(rs))
	}
	var got []string
	for _, r := range rs {
		ops, err := plan(r, rec, "v")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range ops {
			got = append(got, o.mode+" "+o.key)
		}
	}
	want := []string{"d p:user:email:a@x", "h p:user:1", "h p:user:email:b@x", "d p:any:1"}
	if len(got) != len(want) {
		t.Fatalf("ops %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ops %v, want %v", got, want)
		}
	}
	if len(rules.Match("other", "users")) != 0 || len(rules.Match("shop", "orders")) != 1 || len(rules.Rules()) != 2 {
		t.Fatalf("the rule of a database not replicated was compiled: %d rules", len(rules.Rules()))
	}
}

func TestPlanRefusesAKeyColumnTheTableLacks(t *testing.T) {
	rules := cacherule.Compile(config.Cache{Rules: []config.Rule{{Table: "d.t", Keys: []string{"t:{nope}"}, Action: "evict"}}}, nil)
	rec := &schemas.Record{Op: schemas.OpInsert, Database: "d", Table: "t",
		Columns: []schemas.Column{{Name: "id", Type: "int"}}, After: schemas.Row{"id": s("1")}}
	if _, err := plan(rules.Rules()[0], rec, "v"); err == nil {
		t.Fatal("a key template naming a missing column must be an error")
	}
}
