package mysql

import "testing"

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
