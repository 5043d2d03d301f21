package schemas

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The wire form, written by hand: the producer encodes every row change and
// its Kafka key once, and reflection was a fifth of its CPU. The bytes are
// those goccy/go-json's Marshal gives for the same values (fields in struct
// order, omitempty fields left out, map keys sorted, its string escapes):
// FuzzDecode and TestEncodeIsWhatMarshalGives hold the two to it, and the
// Kafka key must not change from one version to the next (it picks the
// partition).

// Encode renders a record as its wire form.
func Encode(r *Record) ([]byte, error) {
	r.SchemaVersion = SchemaVersion
	b := make([]byte, 0, 256+r.size())
	b = append(b, `{"schema_version":`...)
	b = strconv.AppendInt(b, int64(r.SchemaVersion), 10)
	b = appendField(b, "op", string(r.Op))
	b = appendField(b, "database", r.Database)
	if r.Table != "" {
		b = appendField(b, "table", r.Table)
	}
	if len(r.Columns) > 0 {
		b = append(b, `,"columns":[`...)
		for i, c := range r.Columns {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendString(b, c.Name)
			b = appendField(b, "type", c.Type)
			if c.Binary {
				b = append(b, `,"binary":true`...)
			}
			if c.Key {
				b = append(b, `,"key":true`...)
			}
			if c.Invisible {
				b = append(b, `,"invisible":true`...)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = appendRowField(b, "key", r.Key)
	b = appendRowField(b, "before", r.Before)
	b = appendRowField(b, "after", r.After)
	if r.Statement != "" {
		b = appendField(b, "statement", r.Statement)
	}
	if r.Schema != "" {
		b = appendField(b, "schema", r.Schema)
	}
	if r.NoForeignKeyChecks {
		b = append(b, `,"no_foreign_key_checks":true`...)
	}
	if r.NoUniqueChecks {
		b = append(b, `,"no_unique_checks":true`...)
	}
	if r.NoCheckConstraints {
		b = append(b, `,"no_check_constraints":true`...)
	}
	b = append(b, `,"txn":{"gtid":`...)
	b = appendString(b, r.Txn.GTID)
	b = append(b, `,"index":`...)
	b = strconv.AppendInt(b, int64(r.Txn.Index), 10)
	b = append(b, `,"last":`...)
	b = strconv.AppendBool(b, r.Txn.Last)
	if r.Txn.Snapshot {
		b = append(b, `,"snapshot":true`...)
	}
	b = append(b, `},"source":{"server_id":`...)
	b = strconv.AppendUint(b, uint64(r.Source.ServerID), 10)
	b = appendField(b, "file", r.Source.File)
	b = append(b, `,"pos":`...)
	b = strconv.AppendUint(b, uint64(r.Source.Pos), 10)
	b = append(b, `,"commit_time_ms":`...)
	b = strconv.AppendInt(b, r.Source.CommitTimeMS, 10)
	b = appendField(b, "gtid_set", r.Source.GTIDSet)
	if r.Source.Resume != "" {
		b = appendField(b, "resume", r.Source.Resume)
	}
	b = append(b, '}')
	if r.Standby != nil {
		b = append(b, `,"standby":`...)
		b = appendStandby(b, r.Standby)
	}
	return append(b, '}'), nil
}

// KafkaKey identifies the row: database, table and primary key. Tables
// without a primary key are keyed by table alone, which keeps their changes in
// one partition and so in order. DDL is keyed by its database.
func (r *Record) KafkaKey() []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"database":`...)
	b = appendString(b, r.Database)
	if r.Table != "" {
		b = appendField(b, "table", r.Table)
	}
	b = appendRowField(b, "key", r.Key)
	return append(b, '}')
}

func appendStandby(b []byte, s *Standby) []byte {
	b = append(b, `{"commit_time_ms":`...)
	b = strconv.AppendInt(b, s.CommitTimeMS, 10)
	b = append(b, `,"primary_offset":`...)
	b = strconv.AppendInt(b, s.PrimaryOffset, 10)
	b = append(b, `,"primary_partition":`...)
	b = strconv.AppendInt(b, int64(s.PrimaryPartition), 10)
	if s.Epoch != 0 {
		b = append(b, `,"epoch":`...)
		b = strconv.AppendInt(b, s.Epoch, 10)
	}
	if s.Cascade != nil {
		b = append(b, `,"cascade":{"foreign_key":`...)
		b = appendString(b, s.Cascade.ForeignKey)
		b = appendField(b, "action", s.Cascade.Action)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendField appends ,"name":"value".
func appendField(b []byte, name, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

// appendRowField appends ,"name":{...} unless the row is empty.
func appendRowField(b []byte, name string, row Row) []byte {
	if len(row) == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':', '{')
	var buf [16]string
	keys, escaped := buf[:0], false
	for k := range row {
		keys = append(keys, k)
		escaped = escaped || !plain(k)
	}
	if escaped {
		// Marshal orders keys as it writes them, escaped.
		slices.SortFunc(keys, func(x, y string) int { return bytes.Compare(appendString(nil, x), appendString(nil, y)) })
	} else {
		slices.Sort(keys)
	}
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		if v := row[k]; v != nil {
			b = appendString(b, *v)
		} else {
			b = append(b, "null"...)
		}
	}
	return append(b, '}')
}

// asIs marks the bytes appendString writes as they are: printable ASCII
// but for quotes, backslashes, <, > and &.
var asIs = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = !strings.ContainsRune(`"\\<>&`, rune(c))
	}
	return t
}()

// plain reports whether appendString writes s as it is.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if !asIs[s[i]] {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as goccy/go-json does:
// quotes, backslashes and control characters; <, > and & (safe inside
// HTML); U+2028 and U+2029 (line ends to JavaScript); bytes that are not
// UTF-8 become U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if asIs[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// size is roughly what the record's values add to its wire form.
func (r *Record) size() int {
	n := len(r.Statement)
	for _, row := range []Row{r.Before, r.After} {
		for k, v := range row {
			n += len(k) + 8
			if v != nil {
				n += len(*v)
			}
		}
	}
	return n + 32*len(r.Columns)
}
