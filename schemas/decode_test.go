package schemas

import (
	"bytes"
	"slices"
	"testing"
)

// hasControl's word test against the byte it stands for, at every place
// of a word and next to the bytes around 0x20 and 0x80.
func TestHasControl(t *testing.T) {
	for _, c := range []byte{0x00, 0x01, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0x9f, 0xa0, 0xff} {
		for n := 1; n <= 17; n++ {
			for at := 0; at < n; at++ {
				b := bytes.Repeat([]byte{'a'}, n)
				b[at] = c
				if got, want := hasControl(b), c < 0x20; got != want {
					t.Fatalf("hasControl(%q) = %v, want %v", b, got, want)
				}
			}
		}
	}
}

// Records of one table share their column list, decoded once; the list
// shared is the one their bytes say, even where names hold quotes,
// brackets and escapes, and it outlives the bytes of the record that
// brought it.
func TestColumnListsAreSharedByTheirBytes(t *testing.T) {
	record := func(names ...string) []byte {
		r := &Record{SchemaVersion: 1, Op: OpInsert, Database: "d", Table: "t", After: Row{}, Txn: Txn{GTID: "0-1-1"}}
		for _, n := range names {
			r.Columns = append(r.Columns, Column{Name: n, Type: "int"})
			r.After[n] = sp("1")
		}
		b, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	lists := [][]string{
		{"id", "a"},
		{"id", `a"]},{"name":"b`}, // the JSON of a longer list inside a name
		{"id", `a\`, "b"},
		{"id", `a\"`},
		{"id", "a", "b"},
	}
	first := map[int]*Record{}
	for round := range 2 {
		for i, names := range lists {
			b := record(names...)
			r, err := DecodeShared(b)
			if err != nil {
				t.Fatalf("%q: %v", names, err)
			}
			for j := range b {
				b[j] = 'x' // the list must not be the record's bytes
			}
			var got []string
			for _, c := range r.Columns {
				got = append(got, c.Name)
			}
			if !slices.Equal(got, names) {
				t.Fatalf("round %d: columns %q, want %q", round, got, names)
			}
			if round == 0 {
				first[i] = r
			} else if &first[i].Columns[0] != &r.Columns[0] {
				t.Fatalf("%q: decoded again, not shared", names)
			}
		}
	}
	cols := first[0].Columns
	if grown := append(cols, Column{Name: "z"}); &grown[0] == &cols[0] {
		t.Fatal("an append to a shared list writes into it")
	}
}
