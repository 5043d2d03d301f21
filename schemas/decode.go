package schemas

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// fastDecode reads a record in the layout Encode writes, without
// reflection: every service decodes every record it reads. It takes the
// fields of Record and nothing else, each once, with the JSON types Encode
// gives them; anything else (an unknown field, a null where Encode writes
// a value, a number that is not a plain integer, a repeated field) makes it
// give up (ok false) and leaves the input to the general decoder, so that
// what it accepts it reads as the general decoder would
// (FuzzFastDecodeIsTheDecoder holds it to that).
func fastDecode(b []byte, s string) (r *Record, ok bool) {
	d := decoder{b: b, s: s}
	r = &Record{}
	ok = d.object(func(name string) bool {
		switch name {
		case "schema_version":
			return d.int(&r.SchemaVersion)
		case "op":
			var s string
			ok := d.string(&s)
			r.Op = Op(s)
			return ok
		case "database":
			return d.string(&r.Database)
		case "table":
			return d.string(&r.Table)
		case "columns":
			return d.columns(&r.Columns)
		case "key":
			return d.row(&r.Key)
		case "before":
			return d.row(&r.Before)
		case "after":
			return d.row(&r.After)
		case "statement":
			return d.string(&r.Statement)
		case "schema":
			return d.string(&r.Schema)
		case "no_foreign_key_checks":
			return d.bool(&r.NoForeignKeyChecks)
		case "no_unique_checks":
			return d.bool(&r.NoUniqueChecks)
		case "no_check_constraints":
			return d.bool(&r.NoCheckConstraints)
		case "txn":
			return d.object(func(name string) bool {
				switch name {
				case "gtid":
					return d.string(&r.Txn.GTID)
				case "index":
					return d.int(&r.Txn.Index)
				case "last":
					return d.bool(&r.Txn.Last)
				case "snapshot":
					return d.bool(&r.Txn.Snapshot)
				}
				return false
			})
		case "source":
			return d.object(func(name string) bool {
				switch name {
				case "server_id":
					return d.uint32(&r.Source.ServerID)
				case "file":
					return d.string(&r.Source.File)
				case "pos":
					return d.uint32(&r.Source.Pos)
				case "commit_time_ms":
					return d.int64(&r.Source.CommitTimeMS)
				case "gtid_set":
					return d.string(&r.Source.GTIDSet)
				case "resume":
					return d.string(&r.Source.Resume)
				}
				return false
			})
		case "standby":
			r.Standby = &Standby{}
			return d.object(func(name string) bool {
				switch name {
				case "commit_time_ms":
					return d.int64(&r.Standby.CommitTimeMS)
				case "primary_offset":
					return d.int64(&r.Standby.PrimaryOffset)
				case "epoch":
					return d.int64(&r.Standby.Epoch)
				case "primary_partition":
					var n int64
					ok := d.int64(&n) && int64(int32(n)) == n
					r.Standby.PrimaryPartition = int32(n)
					return ok
				case "cascade":
					c := &Cascade{}
					r.Standby.Cascade = c
					return d.object(func(name string) bool {
						switch name {
						case "foreign_key":
							return d.string(&c.ForeignKey)
						case "action":
							return d.string(&c.Action)
						}
						return false
					})
				}
				return false
			})
		}
		return false
	})
	d.space()
	return r, ok && d.i == len(d.b)
}

// decoder reads JSON from b at i. The strings it reads are parts of s, b's
// bytes as a string: one allocation for all of them, or none.
type decoder struct {
	b []byte
	s string
	i int
}

func (d *decoder) space() {
	for d.i < len(d.b) && d.b[d.i] <= ' ' && (d.b[d.i] == ' ' || d.b[d.i] == '\t' || d.b[d.i] == '\n' || d.b[d.i] == '\r') {
		d.i++
	}
}

// next skips white space and reports whether the next byte is c, taking it.
func (d *decoder) next(c byte) bool {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// object reads an object whose fields field reads, each name at most once.
func (d *decoder) object(field func(name string) bool) bool {
	if !d.next('{') {
		return false
	}
	if d.next('}') {
		return true
	}
	var buf [16]string
	seen := buf[:0]
	for {
		var name string
		if !d.string(&name) || !d.next(':') {
			return false
		}
		for _, s := range seen {
			if s == name {
				return false
			}
		}
		seen = append(seen, name)
		if !field(name) {
			return false
		}
		if d.next('}') {
			return true
		}
		if !d.next(',') {
			return false
		}
	}
}

// columnLists holds column lists already decoded, by their JSON: every
// record of a table carries the same list, and every service decodes every
// record it reads, so a list seen before is shared instead of decoded
// again. Records only read their Columns. Bounded: emptied when full.
var columnLists = struct {
	sync.RWMutex
	m     map[string][]Column
	bytes int
}{m: map[string][]Column{}}

const (
	maxColumnLists     = 4096
	maxColumnListBytes = 16 << 20
)

// columns reads the column list, the one of a record before it if its
// JSON is the same. A list whose bytes equal one that decoded is that
// list whatever skipJSON makes of them, so skipJSON only has to be right
// on lists it has seen decode.
func (d *decoder) columns(out *[]Column) bool {
	if *out != nil {
		return false
	}
	d.space()
	start := d.i
	if d.skipJSON() {
		columnLists.RLock()
		cols, ok := columnLists.m[string(d.b[start:d.i])]
		columnLists.RUnlock()
		if ok {
			*out = cols
			return true
		}
	}
	d.i = start
	cols, ok := d.columnList()
	if !ok {
		return false
	}
	// Kept beyond this record: its own strings, not parts of the
	// record's bytes (a whole Kafka fetch, for DecodeShared).
	for i := range cols {
		cols[i].Name, cols[i].Type = strings.Clone(cols[i].Name), strings.Clone(cols[i].Type)
	}
	cols = slices.Clip(cols) // an append by a reader copies
	raw := string(d.b[start:d.i])
	columnLists.Lock()
	if len(columnLists.m) >= maxColumnLists || columnLists.bytes+len(raw) > maxColumnListBytes {
		clear(columnLists.m)
		columnLists.bytes = 0
	}
	columnLists.m[raw] = cols
	columnLists.bytes += len(raw)
	columnLists.Unlock()
	*out = cols
	return true
}

// skipJSON passes over the array, object or string at d.i, to the byte
// after its end, without checking what is inside.
func (d *decoder) skipJSON() bool {
	depth := 0
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case '"':
			for {
				j := bytes.IndexByte(d.b[d.i+1:], '"')
				if j < 0 {
					return false
				}
				d.i += j + 1
				escapes := 0
				for d.b[d.i-1-escapes] == '\\' {
					escapes++
				}
				if escapes%2 == 0 {
					break
				}
			}
		case '[', '{':
			depth++
		case ']', '}':
			depth--
		}
		d.i++
		if depth <= 0 {
			return depth == 0
		}
	}
	return false
}

func (d *decoder) columnList() ([]Column, bool) {
	if !d.next('[') {
		return nil, false
	}
	cols := make([]Column, 0, 8)
	if d.next(']') {
		return cols, true
	}
	for {
		var c Column
		if !d.object(func(name string) bool {
			switch name {
			case "name":
				return d.string(&c.Name)
			case "type":
				return d.string(&c.Type)
			case "binary":
				return d.bool(&c.Binary)
			case "key":
				return d.bool(&c.Key)
			case "invisible":
				return d.bool(&c.Invisible)
			}
			return false
		}) {
			return nil, false
		}
		cols = append(cols, c)
		if d.next(']') {
			return cols, true
		}
		if !d.next(',') {
			return nil, false
		}
	}
}

// row reads an object of strings and nulls.
func (d *decoder) row(out *Row) bool {
	if *out != nil {
		return false
	}
	row := make(Row, 8)
	vals := make([]string, 0, 8) // the values' headers, together
	ok := d.object(func(name string) bool {
		if d.literal("null") {
			row[name] = nil
			return true
		}
		vals = append(vals, "")
		v := &vals[len(vals)-1]
		if !d.string(v) {
			return false
		}
		row[name] = v
		return true
	})
	*out = row
	return ok
}

func (d *decoder) literal(word string) bool {
	d.space()
	if len(d.b)-d.i >= len(word) && string(d.b[d.i:d.i+len(word)]) == word {
		d.i += len(word)
		return true
	}
	return false
}

func (d *decoder) bool(out *bool) bool {
	switch {
	case d.literal("true"):
		*out = true
	case d.literal("false"):
		*out = false
	default:
		return false
	}
	return true
}

// integer reads a plain integer that fits in 64 bits: an optional minus
// and digits, no leading zero.
func (d *decoder) integer() (int64, bool) {
	d.space()
	neg := d.i < len(d.b) && d.b[d.i] == '-'
	if neg {
		d.i++
	}
	digits := d.i
	var n uint64
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		if n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + uint64(d.b[d.i]-'0')
		d.i++
	}
	count := d.i - digits
	if count == 0 || (count > 1 && d.b[digits] == '0') || n > 1<<63 || (n == 1<<63 && !neg) {
		return 0, false
	}
	if d.i < len(d.b) && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		return 0, false
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

func (d *decoder) int64(out *int64) bool {
	n, ok := d.integer()
	*out = n
	return ok
}

func (d *decoder) int(out *int) bool {
	n, ok := d.integer()
	*out = int(n)
	return ok && int64(int(n)) == n
}

func (d *decoder) uint32(out *uint32) bool {
	n, ok := d.integer()
	*out = uint32(n)
	return ok && n >= 0 && n <= 1<<32-1
}

// string reads a JSON string (the input is valid UTF-8).
func (d *decoder) string(out *string) bool {
	if !d.next('"') {
		return false
	}
	start := d.i
	end := bytes.IndexByte(d.b[start:], '"')
	if end < 0 {
		return false
	}
	text := d.b[start : start+end]
	if bytes.IndexByte(text, '\\') >= 0 {
		return d.escaped(out, start)
	}
	if hasControl(text) {
		return false
	}
	*out = d.s[start : start+end]
	d.i = start + end + 1
	return true
}

// hasControl reports whether b holds a byte below 0x20, which JSON
// strings may not: eight bytes at a time, since values are most of a
// record. A word has such a byte iff subtracting 0x20 from each byte
// borrows into a byte whose top bit was clear.
func hasControl(b []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; len(b) >= 8; b = b[8:] {
		x := binary.LittleEndian.Uint64(b)
		if (x-0x20*ones)&^x&highs != 0 {
			return true
		}
	}
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// escaped reads the rest of a string that has escapes, from start.
func (d *decoder) escaped(out *string, start int) bool {
	buf := append(make([]byte, 0, d.i-start+16), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			*out = string(buf)
			d.i++
			return true
		case c < 0x20:
			return false
		case c != '\\':
			buf = append(buf, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			return false
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return false
			}
			if utf16.IsSurrogate(r) {
				// A pair makes one character; anything else is U+FFFD.
				r2 := rune(-1)
				if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
					save := d.i
					d.i += 2
					if r2, ok = d.hex4(); !ok {
						return false
					}
					if utf16.DecodeRune(r, r2) == utf8.RuneError {
						d.i, r2 = save, -1
					}
				}
				if r2 < 0 {
					return false // leave lone halves to the general decoder
				}
				r = utf16.DecodeRune(r, r2)
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return false
		}
	}
	return false
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	d.i += 4
	return r, true
}
