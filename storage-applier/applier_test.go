package main

import (
	"encoding/json"
	"log/slog"
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
		{schemas.Record{Op: schemas.OpDelete, Database: "d", Table: "t", Columns: cols, Before: before},
			"DELETE FROM `d`.`t` WHERE `id` <=> ?", []any{"1"}},
		// no primary key: the whole before image, one row
		{schemas.Record{Op: schemas.OpDelete, Database: "d", Table: "t", Columns: []schemas.Column{{Name: "a", Type: "int"}, {Name: "bin", Type: "blob", Binary: true}}, Before: before},
			"DELETE FROM `d`.`t` WHERE `a` <=> ? AND `bin` <=> ? LIMIT 1", []any{nil, []byte{0, 0xff}}},
	} {
		q, args, err := rowStatement(&c.rec)
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
		After: schemas.Row{"id": sp("1")}, Txn: schemas.Txn{GTID: gtid, Index: index, Last: last}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: "p", Offset: off, Value: b}
}

// The rule for incomplete transactions: rows must arrive with indexes 0, 1,
// 2, ... of one GTID up to the last-row flag; anything else stops the
// applier before any of the transaction is applied.
func TestAssemblerStopsOnIncompleteTransactions(t *testing.T) {
	a := &assembler{topic: "p", log: slog.Default()}
	for i, r := range []*kgo.Record{rec(t, 0, "0-1-1", 0, false), rec(t, 1, "0-1-1", 1, false)} {
		if tx, err := a.add(r); err != nil || tx != nil {
			t.Fatalf("row %d: %v %v", i, tx, err)
		}
	}
	tx, err := a.add(rec(t, 3, "0-1-1", 2, true))
	if err != nil || tx == nil || len(tx.records) != 3 || tx.last() != 3 {
		t.Fatalf("whole transaction: %+v %v", tx, err)
	}

	// The same transaction starting over replaces the partial rows of an
	// aborted Kafka transaction that a broker delivered.
	for _, r := range []*kgo.Record{rec(t, 10, "0-1-2", 0, false), rec(t, 11, "0-1-2", 1, false), rec(t, 13, "0-1-2", 0, false)} {
		if tx, err := a.add(r); err != nil || tx != nil {
			t.Fatalf("offset %d: %v %v", r.Offset, tx, err)
		}
	}
	tx, err = a.add(rec(t, 14, "0-1-2", 1, true))
	if err != nil || tx == nil || len(tx.records) != 2 || tx.first() != 13 {
		t.Fatalf("transaction that started over: %+v %v", tx, err)
	}

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
		a := &assembler{topic: "p", log: slog.Default()}
		var err error
		for _, r := range c.recs {
			var tx *txn
			if tx, err = a.add(r); tx != nil {
				t.Fatalf("%s: a transaction was completed", c.name)
			}
			if err != nil {
				break
			}
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || !service.IsPermanent(err) {
			t.Errorf("%s: error %v, want a permanent error containing %q", c.name, err, c.want)
		}
	}
}
