package schemas

import (
	"strings"
	"testing"
)

// sysbenchRow is a record like the benchmark's: an update of a sysbench
// row (id, k, c CHAR(120), pad CHAR(60)) with both images.
func sysbenchRow() *Record {
	c, pad := strings.Repeat("83868641912-28773972837-", 5), strings.Repeat("67847967377-", 5)
	return &Record{
		Op: OpUpdate, Database: "sbtest", Table: "sbtest1",
		Columns: []Column{{Name: "id", Type: "int", Key: true}, {Name: "k", Type: "int"}, {Name: "c", Type: "char"}, {Name: "pad", Type: "char"}},
		Key:     Row{"id": sp("4711")},
		Before:  Row{"id": sp("4711"), "k": sp("5012"), "c": sp(c), "pad": sp(pad)},
		After:   Row{"id": sp("4711"), "k": sp("5013"), "c": sp(c), "pad": sp(pad)},
		Txn:     Txn{GTID: "0-1-123456", Index: 1},
		Source:  Source{ServerID: 1, File: "binlog.000001", Pos: 123456789, CommitTimeMS: 1700000000000, GTIDSet: "0-1-123456"},
		Standby: &Standby{CommitTimeMS: 1700000000005, PrimaryOffset: 987654},
	}
}

// Every service decodes each record it reads and the producer and the
// storage-applier encode each one they write: per-record costs that bound
// their rates (go test -bench . ./schemas).
func BenchmarkDecode(b *testing.B) {
	raw, err := Encode(sysbenchRow())
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		decode func([]byte) (*Record, error)
	}{{"copy", Decode}, {"shared", DecodeShared}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := c.decode(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	r := sysbenchRow()
	for b.Loop() {
		if _, err := Encode(r); err != nil {
			b.Fatal(err)
		}
	}
}
