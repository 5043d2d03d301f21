package mysql

import (
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
