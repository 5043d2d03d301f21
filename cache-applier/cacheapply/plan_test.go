package cacheapply

import (
	"strconv"
	"strings"
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

// An update's before image is looked at only when a key column changed:
// to NULL, from NULL, or to another value, each evicts the old key (if
// any), and one that leaves the key columns alone evicts nothing.
func TestPlanEvictsOnlyForAChangedKeyColumn(t *testing.T) {
	rule := cacherule.Compile(config.Cache{Rules: []config.Rule{
		{Table: "shop.users", Keys: []string{"user:{id}", "user:email:{email}"}, Action: "refresh", Format: "hash"},
	}}, nil).Rules()[0]
	cols := []schemas.Column{{Name: "id", Type: "int", Key: true}, {Name: "email", Type: "varchar"}, {Name: "note", Type: "text"}}
	for _, c := range []struct {
		before, after *string
		want          string
	}{
		{s("a@x"), s("a@x"), "h user:1, h user:email:a@x"},
		{s("a@x"), s("b@x"), "d user:email:a@x, h user:1, h user:email:b@x"},
		{s("a@x"), nil, "d user:email:a@x, h user:1"},
		{nil, s("b@x"), "h user:1, h user:email:b@x"},
		{nil, nil, "h user:1"},
	} {
		rec := &schemas.Record{Op: schemas.OpUpdate, Database: "shop", Table: "users", Columns: cols,
			Before: schemas.Row{"id": s("1"), "email": c.before, "note": s("old")},
			After:  schemas.Row{"id": s("1"), "email": c.after, "note": s("new")}}
		ops, err := plan(rule, rec, "v")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range ops {
			got = append(got, o.mode+" "+o.key)
		}
		if strings.Join(got, ", ") != c.want {
			t.Errorf("email %v -> %v: ops %v, want %s", c.before, c.after, got, c.want)
		}
	}
}

// sysbenchRule caches sysbench's first table as hashes keyed by id.
var sysbenchRule = config.Rule{Table: "sbtest.sbtest1", Keys: []string{"sb1:{id}"}, Action: "refresh", Format: "hash"}

// sysbenchUpdate is the encoded standby-log record of a sysbench update
// of row id (id, k, c of 119 characters, pad of 59; k goes up by one) at
// offset of the primary log's epoch.
func sysbenchUpdate(b *testing.B, id int, offset, epoch int64) []byte {
	c, pad := strings.Repeat("83868641912-", 10)[:119], strings.Repeat("6784796737-", 6)[:59]
	i := strconv.Itoa(id)
	raw, err := schemas.Encode(&schemas.Record{
		Op: schemas.OpUpdate, Database: "sbtest", Table: "sbtest1",
		Columns: []schemas.Column{{Name: "id", Type: "int", Key: true}, {Name: "k", Type: "int"}, {Name: "c", Type: "char"}, {Name: "pad", Type: "char"}},
		Key:     schemas.Row{"id": &i},
		Before:  schemas.Row{"id": &i, "k": s(strconv.Itoa(id * 7)), "c": &c, "pad": &pad},
		After:   schemas.Row{"id": &i, "k": s(strconv.Itoa(id*7 + 1)), "c": &c, "pad": &pad},
		Txn:     schemas.Txn{GTID: "0-1-" + i, Last: true},
		Source:  schemas.Source{ServerID: 1, File: "binlog.000001", Pos: 123456789, CommitTimeMS: 1700000000000},
		Standby: &schemas.Standby{CommitTimeMS: 1700000000005, PrimaryOffset: offset, Epoch: epoch},
	})
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// A sysbench update under a hash rule: what the cache-applier spends on a
// record besides Kafka and Redis, decoding and planning, in µs per record:
//
//	go test -run X -bench Record ./cache-applier/cacheapply
func BenchmarkRecord(b *testing.B) {
	rule := cacherule.Compile(config.Cache{Rules: []config.Rule{sysbenchRule}}, nil).Rules()[0]
	raw := sysbenchUpdate(b, 4711, 987654, 0)
	for b.Loop() {
		r, err := schemas.DecodeShared(raw) // as decodeAhead does
		if err != nil {
			b.Fatal(err)
		}
		if _, err := plan(rule, r, "v"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/record")
}
