package cacheapply

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/schemas"
)

// Records decoded ahead come back in their order, a bad one as an error at
// its own place, whatever chunk and worker decoded them.
func TestDecodeAheadKeepsOrderAndPlaces(t *testing.T) {
	const n = 3*decodeChunk + 5
	recs := make([]*kgo.Record, n)
	for i := range recs {
		raw, err := schemas.Encode(&schemas.Record{Op: schemas.OpInsert, Database: "d", Table: "t",
			Columns: []schemas.Column{{Name: "id", Type: "int", Key: true}}, After: schemas.Row{"id": s(fmt.Sprint(i))},
			Txn: schemas.Txn{GTID: "0-1-1", Index: i}})
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = &kgo.Record{Value: raw}
	}
	const bad = decodeChunk + 7
	recs[bad] = &kgo.Record{Value: []byte(`{"op":`)}
	d := decodeAhead(recs)
	defer d.close()
	for i := range recs {
		r, err := d.record(i)
		if i == bad {
			if err == nil {
				t.Fatalf("record %d is not JSON, yet decoded", i)
			}
			continue
		}
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if got := *r.After["id"]; got != fmt.Sprint(i) {
			t.Fatalf("record %d came back as the one of id %s", i, got)
		}
	}
}
