package mysql

import (
	"strings"
	"testing"
)

func TestGTIDSetCoversAppliedTransactions(t *testing.T) {
	g, err := ParseGTIDSet("")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := g.Covers("0-1-5"); c {
		t.Fatal("an empty set covers nothing")
	}
	if g, err = g.With("0-1-5"); err != nil {
		t.Fatal(err)
	}
	if g, err = g.With("1-2-7,0-1-3"); err != nil { // a start position: per domain, the later
		t.Fatal(err)
	}
	if g.String() != "0-1-5,1-2-7" {
		t.Fatalf("set %s, want 0-1-5,1-2-7", g)
	}
	for gtid, want := range map[string]bool{"0-1-5": true, "0-1-4": true, "0-1-6": false, "1-2-7": true, "1-2-8": false, "2-1-1": false} {
		if c, err := g.Covers(gtid); err != nil || c != want {
			t.Errorf("covers(%s) = %v, %v; want %v", gtid, c, err, want)
		}
	}
	if _, err := g.Covers("nonsense"); err == nil {
		t.Error("a malformed GTID must be an error")
	}
}

const (
	uuidA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	uuidB = "9b2c6f2e-0a3f-11ef-8d5e-0242ac120002"
)

func TestMySQLGTIDSetsWithGapsSourcesAndTags(t *testing.T) {
	g, err := ParseGTIDSet(uuidA + ":1-5:8,\n" + uuidB + ":1-3:blue:1-2") // as gtid_executed prints it
	if err != nil {
		t.Fatal(err)
	}
	if g.Flavor() != MySQL {
		t.Fatalf("flavour %q, want mysql", g.Flavor())
	}
	for gtid, want := range map[string]bool{
		uuidA + ":5": true, uuidA + ":6": false, uuidA + ":8": true, uuidA + ":9": false,
		uuidB + ":3": true, uuidB + ":blue:2": true, uuidB + ":blue:3": false, uuidB + ":red:1": false,
		"00000000-0000-0000-0000-000000000001:1": false,
	} {
		if c, err := g.Covers(gtid); err != nil || c != want {
			t.Errorf("covers(%s) = %v, %v; want %v", gtid, c, err, want)
		}
	}
	next, dup, err := g.Add(uuidA + ":6")
	if err != nil || dup {
		t.Fatalf("add a new GTID: dup %v, %v", dup, err)
	}
	if _, dup, _ := next.Add(uuidA + ":3"); !dup {
		t.Error("a GTID inside the set is a duplicate")
	}
	if c, _ := g.Covers(uuidA + ":6"); c {
		t.Error("Add changed the set it was called on")
	}
	if want := uuidA + ":1-6:8," + uuidB + ":1-3:blue:1-2"; next.String() != want {
		t.Errorf("set %s, want %s", next, want)
	}
	with, err := next.With(uuidA + ":7")
	if err != nil || strings.Contains(next.String(), ":1-8") || !strings.Contains(with.String(), ":1-8") {
		t.Errorf("With: %s (%v), and the set it was called on %s", with, err, next)
	}
	if err := next.Extend(uuidB + ":blue:3"); err != nil || !strings.Contains(next.String(), "blue:1-3") {
		t.Errorf("Extend in place: %s, %v", next, err)
	}
	if f := next.First(); f != uuidA+":1" {
		t.Errorf("first GTID %s, want %s:1", f, uuidA)
	}
}

func TestBehindCountsWhatTheHeadHoldsAndTheSetDoesNot(t *testing.T) {
	for _, c := range []struct {
		at, head string
		want     int64
	}{
		{"", "", 0},
		{"", "0-1-7,1-2-3", 10},
		{"0-1-5", "0-1-7,1-2-3", 5},
		{"0-1-9", "0-1-7", 0},
		{"", uuidA + ":1-10", 10},
		{uuidA + ":1-5:8", uuidA + ":1-10", 4}, // 6, 7, 9, 10
		{uuidA + ":1-10", uuidA + ":1-10," + uuidB + ":1-2:t:1-3", 5},               // another source and a tag
		{uuidA + ":3-4," + uuidB + ":t:2", uuidA + ":1-10," + uuidB + ":t:1-3", 10}, // 8 of A, 2 of t
	} {
		at, _ := ParseGTIDSet(c.at)
		head, _ := ParseGTIDSet(c.head)
		if n, err := at.Behind(head); err != nil || n != c.want {
			t.Errorf("%q behind %q: %d, %v; want %d", c.at, c.head, n, err, c.want)
		}
	}
}

func TestFlavoursDoNotMix(t *testing.T) {
	maria, _ := ParseGTIDSet("0-1-5")
	if _, err := maria.Covers(uuidA + ":1"); err == nil {
		t.Error("a MySQL GTID against a MariaDB set must be an error")
	}
	if _, err := maria.With(uuidA + ":1-3"); err == nil {
		t.Error("a MySQL set added to a MariaDB one must be an error")
	}
	var empty GTIDSet
	mysql, err := empty.With(uuidA + ":1-3")
	if err != nil || mysql.Flavor() != MySQL {
		t.Fatalf("the empty set takes the flavour of what is added: %v, %v", mysql.Flavor(), err)
	}
	if _, err := mysql.Behind(maria); err == nil {
		t.Error("Behind across flavours must be an error")
	}
	if empty.Stream(MySQL).String() != "" || empty.Stream(MariaDB).String() != "" {
		t.Error("the empty set streams as an empty set of the primary's flavour")
	}
}
