package schemas

import (
	"bytes"
	stdjson "encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"

	json "github.com/goccy/go-json"
)

// Decode takes bytes from a topic: whatever they are, it returns a record
// that passes Check or an error, DecodeShared the same, and a record it
// accepts survives a round trip through Encode unchanged.
func FuzzDecode(f *testing.F) {
	b, err := Encode(sample())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"schema_version":1,"op":"ddl","database":"d","statement":"DROP TABLE t","txn":{"gtid":"0-1-1","index":0,"last":true}}`))
	f.Add([]byte(`{"schema_version":1,"op":"delete","database":"d","table":"t","columns":[{"name":"id","type":"int"}],"before":{"id":null},"txn":{"gtid":"0-1-1","index":3}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := Decode(in)
		shared, serr := DecodeShared(bytes.Clone(in))
		if (err == nil) != (serr == nil) || !reflect.DeepEqual(r, shared) {
			t.Fatalf("Decode read %+v (%v), DecodeShared %+v (%v)", r, err, shared, serr)
		}
		if err != nil {
			return
		}
		if err := r.Check(); err != nil {
			t.Fatalf("Decode accepted a record that fails Check: %v", err)
		}
		out, err := Encode(r)
		if err != nil {
			t.Fatalf("encode an accepted record: %v", err)
		}
		if want, err := json.Marshal(r); err != nil || !bytes.Equal(out, want) {
			t.Fatalf("Encode wrote\n%s\nMarshal writes\n%s", out, want)
		}
		if want, _ := json.Marshal(keyOf(r)); !bytes.Equal(r.KafkaKey(), want) {
			t.Fatalf("KafkaKey is\n%s\nMarshal writes\n%s", r.KafkaKey(), want)
		}
		again, err := Decode(out)
		if err != nil || !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip changed the record (%v):\n%+v\n%+v", err, r, again)
		}
		for _, c := range r.Columns {
			_, _, _ = r.Bytes(r.Image(), c) // must not panic on any value
		}
	})
}

// What the hand-written decoder accepts, it reads as the general decoder
// does; what it gives up on goes to the general one.
func FuzzFastDecodeIsTheDecoder(f *testing.F) {
	for _, r := range []*Record{sample(), sysbenchRow()} {
		b, err := Encode(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"schema_version":1,"op":"ddl","database":"d","statement":"DROP TABLE \"t\" \u00e9\ud83d\ude00","txn":{"gtid":"0-1-1","index":0,"last":true}}`))
	f.Add([]byte(` { "op" : "x" , "key" : { "a" : null , "b" : "\n" } , "columns" : [ ] , "standby" : { } } `))
	f.Add([]byte(`{"txn":{"index":-0,"last":false},"source":{"server_id":4294967295,"pos":01}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		if !utf8.Valid(in) {
			return // Decode refuses it before
		}
		fast, ok := fastDecode(in, string(in))
		if !ok {
			return
		}
		var want Record
		if err := stdjson.Unmarshal(in, &want); err != nil {
			t.Fatalf("fastDecode accepted what Unmarshal refuses (%v):\n%s", err, in)
		}
		if !reflect.DeepEqual(fast, &want) {
			t.Fatalf("fastDecode read\n%#v\nUnmarshal reads\n%#v\nfrom\n%s", fast, &want, in)
		}
	})
}
