package main

import (
	"encoding/json"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/schemas"
)

func sp(s string) *string { return &s }

var cols = []schemas.Column{{Name: "id", Type: "int", Key: true}, {Name: "bin", Type: "varbinary", Binary: true}, {Name: "txt", Type: "text"}}

func TestRowStatements(t *testing.T) {
	before := schemas.Row{"id": sp("1"), "bin": sp("AP8="), "txt": nil}
	after := schemas.Row{"id": sp("2"), "bin": nil, "txt": sp("größe")}
	for _, c := range []struct {
		rec  schemas.Record
		sql  string
		args []any
	}{
		{schemas.Record{Op: schemas.OpInsert, Database: "d", Table: "t`x", Columns: cols, After: after},
			"INSERT INTO `d`.`t``x` (`id`, `bin`, `txt`) VALUES (?, ?, ?)", []any{"2", nil, "größe"}},
		{schemas.Record{Op: schemas.OpUpdate, Database: "d", Table: "t", Columns: cols, Before: before, After: after},
			"UPDATE `d`.`t` SET `id` = ?, `bin` = ?, `txt` = ? WHERE `id` <=> ?", []any{"2", nil, "größe", "1"}},
		// only what changed is set
		{schemas.Record{Op: schemas.OpUpdate, Database: "d", Table: "t", Columns: cols, Before: before,
			After: schemas.Row{"id": sp("1"), "bin": sp("AP8="), "txt": sp("neu")}},
			"UPDATE `d`.`t` SET `txt` = ? WHERE `id` <=> ?", []any{"neu", "1"}},
		{schemas.Record{Op: schemas.OpDelete, Database: "d", Table: "t", Columns: cols, Before: before},
			"DELETE FROM `d`.`t` WHERE `id` <=> ?", []any{"1"}},
		// no primary key: the whole before image, one row; a FLOAT as the double of its single-precision value
		{schemas.Record{Op: schemas.OpDelete, Database: "d", Table: "t", Columns: []schemas.Column{{Name: "a", Type: "float"}, {Name: "bin", Type: "blob", Binary: true}}, Before: before},
			"DELETE FROM `d`.`t` WHERE `a` <=> ? AND `bin` <=> ? LIMIT 1", []any{nil, []byte{0, 0xff}}},
		{schemas.Record{Op: schemas.OpDelete, Database: "d", Table: "t", Columns: []schemas.Column{{Name: "f", Type: "float"}}, Before: schemas.Row{"f": sp("3.4028235e+38")}},
			"DELETE FROM `d`.`t` WHERE `f` <=> ? LIMIT 1", []any{float64(math.MaxFloat32)}},
		// the generated column txt is the standby's to compute
		{schemas.Record{Op: schemas.OpInsert, Database: "d", Table: "g", Columns: cols, After: after},
			"INSERT INTO `d`.`g` (`id`, `bin`) VALUES (?, ?)", []any{"2", nil}},
		// bin is ON UPDATE: set to the primary's value though it did not change
		{schemas.Record{Op: schemas.OpUpdate, Database: "d", Table: "o", Columns: cols, Before: before,
			After: schemas.Row{"id": sp("1"), "bin": sp("AP8="), "txt": sp("neu")}},
			"UPDATE `d`.`o` SET `bin` = ?, `txt` = ? WHERE `id` <=> ?", []any{[]byte{0, 0xff}, "neu", "1"}},
	} {
		q, args, err := rowStatement(&c.rec, &standbyTable{generated: map[string]bool{"txt": c.rec.Table == "g"}, onUpdate: map[string]bool{"bin": c.rec.Table == "o"}})
		if err != nil {
			t.Fatal(err)
		}
		if q != c.sql || !reflect.DeepEqual(args, c.args) {
			t.Errorf("%s:\n got %s %#v\nwant %s %#v", c.rec.Op, q, args, c.sql, c.args)
		}
	}
}

func rec(t *testing.T, off int64, gtid string, index int, last bool) *kgo.Record {
	r := schemas.Record{SchemaVersion: 1, Op: schemas.OpInsert, Database: "d", Table: "t", Columns: cols,
		After: schemas.Row{"id": sp("1"), "bin": nil, "txt": nil}, Txn: schemas.Txn{GTID: gtid, Index: index, Last: last}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: "p", Offset: off, Value: b}
}

// The rule for incomplete transactions: rows must arrive with indexes 0, 1,
// 2, ... of one GTID up to the last-row flag; anything else stops the
// applier before any of the transaction is applied.
func TestSequencerStopsOnIncompleteTransactions(t *testing.T) {
	s := &sequencer{topic: "p", log: slog.Default()}
	place := func(r *kgo.Record) bool {
		t.Helper()
		_, restart, err := s.place(r)
		if err != nil {
			t.Fatalf("offset %d: %v", r.Offset, err)
		}
		return restart
	}
	for _, r := range []*kgo.Record{rec(t, 0, "0-1-1", 0, false), rec(t, 1, "0-1-1", 1, false), rec(t, 3, "0-1-1", 2, true)} {
		if place(r) {
			t.Fatalf("offset %d: a restart in a whole transaction", r.Offset)
		}
	}
	if s.gtid != "" {
		t.Fatalf("transaction %s still open after its last row", s.gtid)
	}

	// The same transaction starting over replaces the partial rows of an
	// aborted Kafka transaction that a broker delivered.
	place(rec(t, 10, "0-1-2", 0, false))
	place(rec(t, 11, "0-1-2", 1, false))
	if !place(rec(t, 13, "0-1-2", 0, false)) {
		t.Fatal("row 0 of the open transaction again is not reported as a restart")
	}
	place(rec(t, 14, "0-1-2", 1, true))

	for _, c := range []struct {
		name string
		recs []*kgo.Record
		want string
	}{
		{"gap in row indexes", []*kgo.Record{rec(t, 0, "0-1-2", 0, false), rec(t, 1, "0-1-2", 2, true)}, "row 2 of transaction 0-1-2, expected row 1"},
		{"next transaction before the last row", []*kgo.Record{rec(t, 0, "0-1-2", 0, false), rec(t, 1, "0-1-3", 0, true)}, "row 0 of transaction 0-1-3, expected row 1 of transaction 0-1-2"},
		{"starts mid-transaction", []*kgo.Record{rec(t, 5, "0-1-4", 3, true)}, "expected row 0"},
		{"malformed", []*kgo.Record{{Topic: "p", Offset: 9, Value: []byte("garbage")}}, "offset 9"},
	} {
		s := &sequencer{topic: "p", log: slog.Default()}
		var err error
		for _, r := range c.recs {
			if _, _, err = s.place(r); err != nil {
				break
			}
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || !service.IsPermanent(err) {
			t.Errorf("%s: error %v, want a permanent error containing %q", c.name, err, c.want)
		}
	}
}

// An outbox keeps small transactions and only the offset range of big ones.
func TestOutboxSpillsBigTransactions(t *testing.T) {
	var o outbox
	r := func(i int, last bool) *schemas.Record {
		return &schemas.Record{Txn: schemas.Txn{GTID: "0-1-1", Index: i, Last: last}}
	}
	o.add(r(0, false), &kgo.Record{Offset: 5, Value: make([]byte, 10)})
	o.add(r(1, true), &kgo.Record{Offset: 6, Value: make([]byte, 10)})
	if o.spilled || len(o.wires) != 2 || o.first != 5 || o.last != 6 {
		t.Fatalf("small transaction: %+v", o)
	}
	for i := range outboxRecords + 5 {
		o.add(r(i, false), &kgo.Record{Offset: int64(100 + i), Value: make([]byte, 10)})
	}
	if !o.spilled || len(o.wires) != 0 || o.first != 100 || o.last != int64(100+outboxRecords+4) {
		t.Fatalf("big transaction: spilled %v, %d records kept, range %d..%d", o.spilled, len(o.wires), o.first, o.last)
	}
	o.add(r(0, false), &kgo.Record{Offset: 900, Value: make([]byte, outboxBytes+1)})
	if !o.spilled || o.first != 900 {
		t.Fatalf("a record over the byte bound: spilled %v, first %d", o.spilled, o.first)
	}
}
