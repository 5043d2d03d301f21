package main

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/schemas"
)

// The changes the standby made itself go out inside their transaction,
// before its last record: the standby log's last record of a transaction
// stays the one with its highest primary offset (status.LastPublished relies on
// it), and each record keeps its own version.
func TestMadeChangesArePublishedBeforeTheLastRecord(t *testing.T) {
	out := make(chan kafka.Item, 10)
	p := &republisher{topic: "standby", out: out}
	row := func(table string, index int, last bool) *schemas.Record {
		v := "1"
		return &schemas.Record{SchemaVersion: 1, Op: schemas.OpDelete, Database: "d", Table: table,
			Columns: []schemas.Column{{Name: "id", Type: "int", Key: true}}, Key: schemas.Row{"id": &v}, Before: schemas.Row{"id": &v},
			Txn: schemas.Txn{GTID: "0-1-5", Index: index, Last: last}}
	}
	o := &outbox{}
	parent, other := row("parent", 0, false), row("other", 1, true)
	parentWire := wire(t, parent, 10)
	o.add(parent, parentWire)
	o.add(other, wire(t, other, 11))
	made := row("child", 0, false)
	made.Standby = &schemas.Standby{PrimaryOffset: 10, Cascade: &schemas.Cascade{ForeignKey: "d.child.fk", Action: "ON DELETE CASCADE"}}
	o.addMade(made, 100)
	if err := p.publish(context.Background(), o, time.UnixMilli(1000)); err != nil {
		t.Fatal(err)
	}
	close(out)
	var got []string
	for it := range out {
		r, err := schemas.Decode(it.Rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		if err := schemas.ValidateStandby(it.Rec.Value); err != nil {
			t.Fatalf("%s: %v", it.Rec.Value, err)
		}
		if it.Last != r.Txn.Last || it.Mark != r.Standby.PrimaryOffset {
			t.Errorf("item of %s: Last %v Mark %d, record last %v offset %d", r.Table, it.Last, it.Mark, r.Txn.Last, r.Standby.PrimaryOffset)
		}
		got = append(got, r.Table+"@"+schemas.FormatVersion(0, r.Standby.PrimaryOffset)[18:]+map[bool]string{true: " last"}[r.Txn.Last]+
			map[bool]string{true: " made"}[r.Standby.Cascade != nil])
		if r.Txn.Index != len(got)-1 {
			t.Errorf("record %d has index %d", len(got)-1, r.Txn.Index)
		}
		// Numbered as on the primary, a record keeps its bytes.
		if r.Table == "parent" && (!bytes.HasPrefix(it.Rec.Value, parentWire.Value[:len(parentWire.Value)-1]) || !bytes.Equal(it.Rec.Key, parentWire.Key)) {
			t.Errorf("the parent's record was encoded again:\n%s %s\nnot a copy of\n%s %s", it.Rec.Key, it.Rec.Value, parentWire.Key, parentWire.Value)
		}
		if !bytes.Equal(it.Rec.Key, r.KafkaKey()) {
			t.Errorf("record of %s keyed %s, want %s", r.Table, it.Rec.Key, r.KafkaKey())
		}
	}
	want := []string{"parent@10", "child@10 made", "other@11 last"}
	if !slices.Equal(got, want) {
		t.Fatalf("published %q, want %q", got, want)
	}
	if len(o.wires) != 0 || len(o.made) != 0 {
		t.Fatal("the outbox was not emptied")
	}
}

// wire is a record as read from the primary log at offset off.
func wire(t testing.TB, r *schemas.Record, off int) *kgo.Record {
	t.Helper()
	it, err := kafka.NewItem("p", 0, r)
	if err != nil {
		t.Fatal(err)
	}
	it.Rec.Offset = int64(off)
	return it.Rec
}
