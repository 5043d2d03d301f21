package schemas

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func sp(s string) *string { return &s }

func sample() *Record {
	return &Record{
		Op: OpUpdate, Database: "shop", Table: "users",
		Columns: []Column{{Name: "id", Type: "bigint unsigned", Key: true}, {Name: "avatar", Type: "varbinary", Binary: true}, {Name: "note", Type: "text"}},
		Key:     Row{"id": sp("18446744073709551615")},
		Before:  Row{"id": sp("18446744073709551615"), "avatar": sp("AP8K"), "note": nil},
		After:   Row{"id": sp("18446744073709551615"), "avatar": sp("AP8K"), "note": sp("größe 🦊")},
		Txn:     Txn{GTID: "0-1-42", Index: 0, Last: true},
		Source:  Source{ServerID: 1, File: "binlog.000001", Pos: 4, CommitTimeMS: 1700000000000, GTIDSet: "0-1-42"},
	}
}

func TestRecordRoundTripsAndValidates(t *testing.T) {
	b, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidatePrimary(b); err != nil {
		t.Fatalf("sample does not match primary.schema.json: %v\n%s", err, b)
	}
	if err := ValidateStandby(b); err == nil {
		t.Fatal("a record without a standby section must not match standby.schema.json")
	}
	r, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	raw, ok, err := r.Bytes(r.After, r.Columns[1])
	if err != nil || !ok || string(raw) != "\x00\xff\n" {
		t.Fatalf("binary column = %q, %v, %v", raw, ok, err)
	}
	if _, ok, _ := r.Bytes(r.Before, r.Columns[2]); ok {
		t.Fatal("NULL must read as not ok")
	}

	r.Standby = &Standby{CommitTimeMS: 1, PrimaryOffset: 7}
	b, _ = Encode(r)
	if err := ValidateStandby(b); err != nil {
		t.Fatalf("standby record does not match standby.schema.json: %v", err)
	}
	if err := ValidatePrimary(b); err == nil {
		t.Fatal("a standby section must not pass as a primary record")
	}
	if v := FormatVersion(r.Standby.Epoch, r.Standby.PrimaryOffset); v != "00000000000000000007" {
		t.Fatalf("version %q", v)
	}
	r.Standby.Epoch = 2
	b, _ = Encode(r)
	if err := ValidateStandby(b); err != nil {
		t.Fatalf("standby record with an epoch does not match standby.schema.json: %v", err)
	}
	if d, err := Decode(b); err != nil || d.Standby.Epoch != 2 {
		t.Fatalf("decoded standby section %+v, %v: want epoch 2", d.Standby, err)
	}
	if v := FormatVersion(r.Standby.Epoch, r.Standby.PrimaryOffset); v != "e0000000002.00000000000000000007" {
		t.Fatalf("version %q", v)
	}
	if string(r.KafkaKey()) != `{"database":"shop","table":"users","key":{"id":"18446744073709551615"}}` {
		t.Fatalf("kafka key %s", r.KafkaKey())
	}
}

// The standby-log copy made by adding bytes to the primary record's wire
// form is the record the encoder would give, and valid.
func TestWithStandbyIsTheEncodedCopy(t *testing.T) {
	primary, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	st := &Standby{CommitTimeMS: 1700000000005, PrimaryOffset: 42, Cascade: &Cascade{ForeignKey: "shop.orders.fk", Action: "ON DELETE CASCADE"}}
	b, err := WithStandby(append(primary, '\n'), st)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateStandby(b); err != nil {
		t.Fatalf("copy does not match standby.schema.json: %v\n%s", err, b)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	want.SchemaVersion, want.Standby = SchemaVersion, st
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("copy decodes as\n%+v\nwant\n%+v", got, want)
	}
	// Without a cascade the section is written by hand: as Encode would.
	st.Cascade = nil
	b, err = WithStandby(primary, st)
	if err != nil {
		t.Fatal(err)
	}
	want.Standby = st
	if encoded, _ := Encode(want); !bytes.Equal(b, encoded) {
		t.Fatalf("copy\n%s\nwant what Encode gives\n%s", b, encoded)
	}
	for _, bad := range []string{"", "{}", "[1]", `{"op":"insert"`} {
		if _, err := WithStandby([]byte(bad), st); err == nil {
			t.Errorf("WithStandby(%q) gave no error", bad)
		}
	}
}

func TestMalformedRecordsAreRejected(t *testing.T) {
	for _, c := range []struct {
		name, json, want string
	}{
		{"not json", `{`, "decode record"},
		{"future version", `{"schema_version":2}`, "schema_version 2"},
		{"unknown op", `{"schema_version":1,"op":"merge","txn":{"gtid":"0-1-1","index":0,"last":true}}`, `unknown op "merge"`},
		{"update without before", `{"schema_version":1,"op":"update","database":"d","table":"t","after":{},"txn":{"gtid":"0-1-1","index":0,"last":true}}`, "without both images"},
		{"no transaction", `{"schema_version":1,"op":"ddl","statement":"x"}`, "without a transaction id"},
		{"snapshot row outside a snapshot", `{"schema_version":1,"op":"snapshot","database":"d","table":"t","after":{},"txn":{"gtid":"0-1-1","index":0,"last":true}}`, "txn.snapshot is false"},
		{"binlog row in a snapshot", `{"schema_version":1,"op":"insert","database":"d","table":"t","after":{},"txn":{"gtid":"0-1-1","index":0,"last":true,"snapshot":true}}`, "txn.snapshot is true"},
	} {
		_, err := Decode([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	if err := ValidatePrimary([]byte(`{"schema_version":1,"op":"insert","database":"d","table":"t","columns":[{"name":"a","type":"int"}],"key":{},"after":{"a":1},"txn":{"gtid":"0-1-1","index":0,"last":false},"source":{"server_id":1,"file":"f","pos":1,"commit_time_ms":1}}`)); err == nil {
		t.Error("a number value (not a string) must fail the schema")
	}
}

// Versions are fixed-width, so string order is (epoch, offset) order, at
// the ends of each field's range too.
func TestFormatVersionOrdersAsNumbers(t *testing.T) {
	const maxInt = int64(^uint64(0) >> 1)
	cases := []struct {
		epoch, offset int64
		want          string
	}{
		{0, 0, "00000000000000000000"},
		{0, 10, "00000000000000000010"},
		{0, maxInt, "09223372036854775807"},
		{1, 0, "e0000000001.00000000000000000000"},
		{4294967295, 123456789, "e4294967295.00000000000123456789"},
	}
	for i, c := range cases {
		if got := FormatVersion(c.epoch, c.offset); got != c.want {
			t.Errorf("FormatVersion(%d, %d) = %q, want %q", c.epoch, c.offset, got, c.want)
		}
		if i > 0 && cases[i-1].want >= c.want {
			t.Errorf("%q does not sort before %q", cases[i-1].want, c.want)
		}
	}
}

// Decode refuses a record whose column list repeats or leaves out a name,
// or whose image names a column the list lacks, in narrow tables and in
// wide ones (more than 32 columns, checked another way).
func TestCheckHoldsImagesToTheColumnList(t *testing.T) {
	for _, width := range []int{3, 40} {
		valid := func() *Record {
			r := &Record{SchemaVersion: SchemaVersion, Op: OpInsert, Database: "d", Table: "t",
				Txn: Txn{GTID: "0-1-1", Last: true}, After: Row{}}
			for i := range width {
				name := fmt.Sprintf("c%d", i)
				r.Columns = append(r.Columns, Column{Name: name, Type: "int"})
				r.After[name] = sp("1")
			}
			return r
		}
		if err := valid().Check(); err != nil {
			t.Fatalf("%d columns: a valid record: %v", width, err)
		}
		for what, spoil := range map[string]func(*Record){
			"a repeated column name": func(r *Record) { r.Columns[width-1].Name = "c0"; delete(r.After, fmt.Sprintf("c%d", width-1)) },
			"an empty column name":   func(r *Record) { r.Columns[1].Name = "" },
			"an image naming a column the list lacks": func(r *Record) {
				delete(r.After, "c1")
				r.After["other"] = sp("1")
			},
			"an image with a value too many": func(r *Record) { r.After["other"] = sp("1") },
		} {
			r := valid()
			spoil(r)
			if err := r.Check(); err == nil {
				t.Errorf("%d columns, %s: no error", width, what)
			}
		}
	}
}
