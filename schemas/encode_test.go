package schemas

import (
	"bytes"
	"testing"

	json "github.com/goccy/go-json"
)

// keyOf is what KafkaKey encodes, as goccy/go-json's Marshal sees it.
func keyOf(r *Record) any {
	return struct {
		Database string `json:"database"`
		Table    string `json:"table,omitempty"`
		Key      Row    `json:"key,omitempty"`
	}{r.Database, r.Table, r.Key}
}

// The hand-written encoder writes the bytes Marshal writes, for every field
// and for every byte and the characters JSON escapes.
func TestEncodeIsWhatMarshalGives(t *testing.T) {
	var every []byte
	for c := range 256 {
		every = append(every, byte(c))
	}
	texts := []string{"", "plain", string(every), "<a href=\"x\">&amp;</a>", "\u2028\u2029\u2027", "é漢字🙂\ufffd", "a\xffb\xc3", "\\\"/\b\f\n\r\t"}
	for _, s := range texts {
		s := s
		for _, r := range []*Record{sample(), sysbenchRow()} {
			r.Database, r.Statement, r.Schema = s, s, s
			r.Columns = append(r.Columns, Column{Name: s, Type: s, Binary: true})
			r.Key[s] = &s
			r.After[s], r.Before[s] = nil, &s
			r.NoForeignKeyChecks, r.NoUniqueChecks, r.NoCheckConstraints = true, true, true
			r.Txn.Snapshot, r.Source.Resume = true, s
			r.Standby = &Standby{CommitTimeMS: -1, PrimaryOffset: 1 << 40, Cascade: &Cascade{ForeignKey: s, Action: s}}
			got, err := Encode(r)
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := json.Marshal(r); !bytes.Equal(got, want) {
				t.Fatalf("Encode wrote\n%s\nMarshal writes\n%s", got, want)
			}
			if want, _ := json.Marshal(keyOf(r)); !bytes.Equal(r.KafkaKey(), want) {
				t.Fatalf("KafkaKey is\n%s\nMarshal writes\n%s", r.KafkaKey(), want)
			}
			r.Table, r.Key, r.Before, r.After, r.Columns, r.Standby = "", nil, Row{}, nil, nil, nil
			if got, _ := Encode(r); !bytes.Equal(got, must(json.Marshal(r))) {
				t.Fatalf("with empty fields Encode wrote\n%s\nMarshal writes\n%s", got, must(json.Marshal(r)))
			}
			if want, _ := json.Marshal(keyOf(r)); !bytes.Equal(r.KafkaKey(), want) {
				t.Fatalf("KafkaKey is\n%s\nMarshal writes\n%s", r.KafkaKey(), want)
			}
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
