package mysql

import (
	"fmt"
	"reflect"
	"testing"
)

func TestMemberListParsesColumnType(t *testing.T) {
	for in, want := range map[string][]string{
		"enum('a','b')":         {"a", "b"},
		"set('x,y','it''s','')": {"x,y", "it's", ""},
		"enum('ü')":             {"ü"},
	} {
		if got := memberList(in); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

func TestRecordTypeNamesTypesAsRecordsDo(t *testing.T) {
	for _, c := range []struct {
		dataType           string
		unsigned, bin      bool
		precision, sc, fsp int
		want               string
	}{
		{"int", true, false, 10, 0, 0, "int unsigned"},
		{"decimal", false, false, 12, 2, 0, "decimal(12,2)"},
		{"datetime", false, false, 0, 0, 6, "datetime(6)"},
		{"varchar", false, true, 0, 0, 0, "varbinary"},
		{"char", false, false, 0, 0, 0, "char"},
		{"mediumtext", false, false, 0, 0, 0, "text"},
		{"longblob", false, true, 0, 0, 0, "blob"},
		{"bit", false, false, 5, 0, 0, "bit(5)"},
		{"point", false, false, 0, 0, 0, "geometry"},
	} {
		if got := recordType(c.dataType, c.unsigned, c.bin, c.precision, c.sc, c.fsp); got != c.want {
			t.Errorf("recordType(%s) = %q, want %q", c.dataType, got, c.want)
		}
	}
}

// The stored bytes of MariaDB's INET4, INET6 and UUID values, as MariaDB
// 10.11 gives them (SELECT HEX(CAST(col AS BINARY))) for the text it shows.
func TestStoredBytes(t *testing.T) {
	for _, c := range []struct{ kind, text, hex string }{
		{"inet4", "10.1.2.3", "0A010203"},
		{"inet4", "0.0.0.1", "00000001"},
		{"inet6", "::ffff:10.1.2.3", "00000000000000000000FFFF0A010203"},
		{"inet6", "::1.2.3.4", "00000000000000000000000001020304"},
		{"inet6", "::1", "00000000000000000000000000000001"},
		{"inet6", "::", "00000000000000000000000000000000"},
		{"inet6", "2001:db8::1", "20010DB8000000000000000000000001"},
		{"uuid", "6ccd780c-baba-1026-9564-5b8c656024db", "6CCD780CBABA102695645B8C656024DB"},
		{"uuid", "00000000-0000-0000-0000-000000000001", "00000000000000000000000000000001"},
	} {
		b, err := StoredBytes(c.kind, []byte(c.text))
		if err != nil || fmt.Sprintf("%X", b) != c.hex {
			t.Errorf("StoredBytes(%s, %q) = %X, %v; want %s", c.kind, c.text, b, err, c.hex)
		}
	}
	for _, c := range []struct{ kind, text string }{{"inet4", "::1"}, {"inet6", "not an address"}, {"uuid", "6ccd780c-baba"}, {"char", "x"}} {
		if b, err := StoredBytes(c.kind, []byte(c.text)); err == nil {
			t.Errorf("StoredBytes(%s, %q) = %X; want an error", c.kind, c.text, b)
		}
	}
}
