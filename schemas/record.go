package schemas

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// SchemaVersion is the version of the record layout this package writes.
const SchemaVersion = 1

// Op is what happened to the row.
type Op string

const (
	OpInsert   Op = "insert"
	OpUpdate   Op = "update"
	OpDelete   Op = "delete"
	OpDDL      Op = "ddl"
	OpSnapshot Op = "snapshot"
	// OpPosition changes no row: it marks where a stream begins (its GTID set
	// is the start position), so a producer that dies before its first
	// transaction resumes there and not at a later "current" position.
	OpPosition Op = "position"
)

// Header names: they repeat what a Kafka tool needs without decoding the body.
const (
	HeaderGTID  = "gtid"
	HeaderOp    = "op"
	HeaderTable = "table"
)

// Column describes one column of the row images, in table order.
type Column struct {
	Name string `json:"name"`
	// Type is the SQL type, e.g. "bigint unsigned", "varchar", "datetime(6)".
	Type string `json:"type"`
	// Binary marks columns whose values are base64 of raw bytes.
	Binary bool `json:"binary,omitempty"`
	// Key marks the primary-key columns.
	Key bool `json:"key,omitempty"`
	// Invisible marks a column SELECT * leaves out (INVISIBLE): the
	// standby gets it, the cache does not.
	Invisible bool `json:"invisible,omitempty"`
}

// Row maps a column name to its value; nil is SQL NULL.
type Row map[string]*string

// Txn places the record in its source transaction.
type Txn struct {
	GTID string `json:"gtid"`
	// Index is the record's position in the transaction, from 0.
	Index int `json:"index"`
	// Last is true on the transaction's final record.
	Last bool `json:"last"`
	// Snapshot marks a transaction of a snapshot (its rows, and the DDL that
	// creates its tables), not one read from the binlog: GTID then names
	// the snapshot's position, shared by all its transactions, and the
	// standby applies them by primary-log offset alone.
	Snapshot bool `json:"snapshot,omitempty"`
}

// Source says where in the primary's binlog the change was read.
type Source struct {
	ServerID uint32 `json:"server_id"`
	File     string `json:"file"`
	Pos      uint32 `json:"pos"`
	// CommitTimeMS is the primary's commit time (binlog seconds, in ms).
	CommitTimeMS int64 `json:"commit_time_ms"`
	// GTIDSet is the primary's GTID position after this transaction; set on
	// the last record only (empty elsewhere, and for a stream that starts at
	// the oldest binlog), it is where the producer resumes.
	GTIDSet string `json:"gtid_set"`
	// Resume, on a last record, is where a restarted producer reads the
	// binlog from when that is before GTIDSet: XA transactions were
	// prepared and not yet committed, and their rows are read again.
	Resume string `json:"resume,omitempty"`
}

// Standby is what the storage-applier adds when it republishes a record.
type Standby struct {
	// CommitTimeMS is when the standby committed the transaction.
	CommitTimeMS int64 `json:"commit_time_ms"`
	// PrimaryOffset is the primary-log offset of the record.
	PrimaryOffset int64 `json:"primary_offset"`
	// Epoch numbers the primary log PrimaryOffset is an offset of: it grows
	// each time the standby moves to a primary log started anew (producer
	// reseed), so a change's place in primary commit order is the pair
	// (Epoch, PrimaryOffset). 0 for the first log, and then left out.
	Epoch            int64 `json:"epoch,omitempty"`
	PrimaryPartition int32 `json:"primary_partition"`
	// Cascade is set on a change the standby made itself, which no primary
	// record carries: a foreign key's ON DELETE/ON UPDATE action run by the
	// standby (InnoDB does not log cascaded changes). PrimaryOffset is then
	// the offset of the primary record whose change set it off.
	Cascade *Cascade `json:"cascade,omitempty"`
}

// Cascade names the foreign key whose referential action made a change.
type Cascade struct {
	// ForeignKey is "database.table.constraint" of the child table.
	ForeignKey string `json:"foreign_key"`
	// Action is the rule that ran: "ON DELETE CASCADE", "ON UPDATE SET NULL", ...
	Action string `json:"action"`
}

// Record is one changed row, or one DDL statement.
type Record struct {
	SchemaVersion int      `json:"schema_version"`
	Op            Op       `json:"op"`
	Database      string   `json:"database"`
	Table         string   `json:"table,omitempty"`
	Columns       []Column `json:"columns,omitempty"`
	Key           Row      `json:"key,omitempty"`
	Before        Row      `json:"before,omitempty"`
	After         Row      `json:"after,omitempty"`
	// Statement is the DDL text, for op "ddl"; Schema is the session's
	// default database it ran in (may differ from Database or be empty).
	Statement string `json:"statement,omitempty"`
	Schema    string `json:"schema,omitempty"`
	// NoForeignKeyChecks, NoUniqueChecks and NoCheckConstraints repeat
	// the flags of the rows event: the primary's session ran with
	// foreign_key_checks=0, unique_checks=0 or (MariaDB)
	// check_constraint_checks=0. The standby applies the row with the same
	// settings, as a native replica does (and so performs the cascades of
	// the foreign keys the primary performed).
	NoForeignKeyChecks bool     `json:"no_foreign_key_checks,omitempty"`
	NoUniqueChecks     bool     `json:"no_unique_checks,omitempty"`
	NoCheckConstraints bool     `json:"no_check_constraints,omitempty"`
	Txn                Txn      `json:"txn"`
	Source             Source   `json:"source"`
	Standby            *Standby `json:"standby,omitempty"`
}

// WithStandby returns the wire form of a primary record's standby-log copy
// from the primary record's own wire form: the same bytes with the standby
// section added before the closing brace. Republishing a record then costs
// a copy, not an encoding; the fields and their meaning are those Encode
// gives. The record must have no standby section yet, and its txn section
// must be the copy's.
func WithStandby(primary []byte, s *Standby) ([]byte, error) {
	body := bytes.TrimRight(primary, " \t\r\n")
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' || len(bytes.TrimSpace(body[1:len(body)-1])) == 0 {
		return nil, fmt.Errorf("add the standby section: the record is not a JSON object with fields")
	}
	const field = `,"standby":`
	out := make([]byte, 0, len(body)+len(field)+96)
	out = append(out, body[:len(body)-1]...)
	out = append(out, field...)
	out = appendStandby(out, s)
	return append(out, '}'), nil
}

// Decode parses one record and checks what every consumer relies on.
func Decode(b []byte) (*Record, error) { return decode(b, string(b)) }

// DecodeShared is Decode for bytes that never change, a Kafka record's
// value as the client hands it over: the record's strings are parts of b
// instead of a copy of it, and keep all of b's memory alive while any of
// them is.
func DecodeShared(b []byte) (*Record, error) {
	return decode(b, unsafe.String(unsafe.SliceData(b), len(b)))
}

// decode is Decode; s holds b's bytes, the strings of the record are parts
// of it.
func decode(b []byte, s string) (*Record, error) {
	// JSON is UTF-8; the decoder would let other bytes into values as is.
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("decode record: it is not valid UTF-8")
	}
	r, ok := fastDecode(b, s)
	if !ok {
		// Not the layout Encode writes: the standard library's decoder,
		// which refuses malformed input with an error where goccy/go-json
		// can panic (schemas/testdata/fuzz/FuzzDecode).
		r = &Record{}
		if err := json.Unmarshal(b, r); err != nil {
			return nil, fmt.Errorf("decode record: %w", err)
		}
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	if len(r.Key) == 0 {
		r.Key = nil // "key": {} and no key are the same: a table without one
	}
	return r, nil
}

// Check reports the first structural problem of a record.
func (r *Record) Check() error {
	if r.SchemaVersion != SchemaVersion {
		return fmt.Errorf("record schema_version %d, this build reads %d", r.SchemaVersion, SchemaVersion)
	}
	if r.Txn.GTID == "" || r.Txn.Index < 0 {
		return fmt.Errorf("record without a transaction id or with a negative row index")
	}
	if (r.Op == OpSnapshot) != (r.Txn.Snapshot && r.Op != OpDDL) {
		return fmt.Errorf("%s record whose txn.snapshot is %v: snapshot rows, and only they and DDL, belong to a snapshot", r.Op, r.Txn.Snapshot)
	}
	switch r.Op {
	case OpInsert, OpSnapshot:
		if r.After == nil {
			return fmt.Errorf("%s record for %s without an after image", r.Op, r.Name())
		}
	case OpUpdate:
		if r.After == nil || r.Before == nil {
			return fmt.Errorf("update record for %s without both images", r.Name())
		}
	case OpDelete:
		if r.Before == nil {
			return fmt.Errorf("delete record for %s without a before image", r.Name())
		}
	case OpDDL:
		if r.Statement == "" {
			return fmt.Errorf("ddl record without a statement")
		}
		if r.Txn.Index != 0 {
			// It may be followed by rows: those of CREATE TABLE ... SELECT.
			return fmt.Errorf("ddl record that is not the first of its transaction")
		}
		return nil
	case OpPosition:
		if r.Txn.Index != 0 || !r.Txn.Last {
			return fmt.Errorf("position record that is not a whole transaction of its own")
		}
		return nil
	default:
		return fmt.Errorf("record with unknown op %q", r.Op)
	}
	if r.Table == "" || r.Database == "" || len(r.Columns) == 0 {
		return fmt.Errorf("%s record without database, table or columns", r.Op)
	}
	// Names unique and each image holding exactly them, checked without
	// building a set: Decode runs this on every record every service reads.
	if c, ok := repeatedColumn(r.Columns); !ok {
		return fmt.Errorf("%s record for %s with an empty or repeated column name %q", r.Op, r.Name(), c)
	}
	for _, img := range []struct {
		name string
		row  Row
	}{{"before", r.Before}, {"after", r.After}} {
		if img.row == nil {
			continue
		}
		if len(img.row) != len(r.Columns) {
			return fmt.Errorf("%s record for %s: the %s image has %d values for %d columns", r.Op, r.Name(), img.name, len(img.row), len(r.Columns))
		}
		// As many values as unique columns, and one for each column: the
		// image names no other column.
		for _, c := range r.Columns {
			if _, ok := img.row[c.Name]; !ok {
				return fmt.Errorf("%s record for %s: the %s image has no value for column %q", r.Op, r.Name(), img.name, c.Name)
			}
		}
	}
	return nil
}

// repeatedColumn finds an empty or repeated column name (ok false): by
// comparing pairs in the few columns most tables have, with a set in wide
// ones.
func repeatedColumn(cols []Column) (name string, ok bool) {
	if len(cols) <= 32 {
		for i, c := range cols {
			if c.Name == "" || slices.ContainsFunc(cols[:i], func(p Column) bool { return p.Name == c.Name }) {
				return c.Name, false
			}
		}
		return "", true
	}
	seen := make(map[string]bool, len(cols))
	for _, c := range cols {
		if c.Name == "" || seen[c.Name] {
			return c.Name, false
		}
		seen[c.Name] = true
	}
	return "", true
}

// Binlog reports whether the record is part of a transaction read from the
// binlog, whose GTID identifies it; position and snapshot records only
// name a position.
func (r *Record) Binlog() bool { return r.Op != OpPosition && !r.Txn.Snapshot }

// Name is "database.table".
func (r *Record) Name() string { return r.Database + "." + r.Table }

// Image is the row the change leaves behind, or for a delete the row it removed.
func (r *Record) Image() Row {
	if r.Op == OpDelete {
		return r.Before
	}
	return r.After
}

// FormatVersion renders a change's position in primary commit order, the
// epoch of its primary log and its offset there, as a cache version that
// Redis compares as a string: the offset in 20 digits in epoch 0 (the form
// caches of earlier versions hold), "e" and the epoch in 10 digits, ".",
// and the offset in 20 digits after. "e" sorts after every digit, so
// every version of a later epoch is greater than every one of epoch 0.
func FormatVersion(epoch, offset int64) string {
	// Without fmt: the cache-applier renders one for every change.
	b := make([]byte, 0, 32)
	if epoch != 0 {
		b = appendPadded(append(b, 'e'), epoch, 10)
		b = append(b, '.')
	}
	return string(appendPadded(b, offset, 20))
}

// appendPadded appends n >= 0 in decimal, zero-padded to width digits.
func appendPadded(b []byte, n int64, width int) []byte {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], n, 10)
	for range width - len(d) {
		b = append(b, '0')
	}
	return append(b, d...)
}

// Bytes returns a column's raw value: base64 decoded for binary columns.
// ok is false for NULL or a missing column.
func (r *Record) Bytes(row Row, col Column) (b []byte, ok bool, err error) {
	v := row[col.Name]
	if v == nil {
		return nil, false, nil
	}
	if !col.Binary {
		return []byte(*v), true, nil
	}
	b, err = base64.StdEncoding.DecodeString(*v)
	if err != nil {
		return nil, false, fmt.Errorf("column %s of %s: value is not base64: %w", col.Name, r.Name(), err)
	}
	return b, true, nil
}

// EncodeValue renders raw bytes as a record value.
func EncodeValue(raw []byte, binary bool) *string {
	s := string(raw)
	if binary {
		s = base64.StdEncoding.EncodeToString(raw)
	}
	return &s
}

// KeyColumns are the primary-key columns, in table order.
func (r *Record) KeyColumns() []Column {
	var ks []Column
	for _, c := range r.Columns {
		if c.Key {
			ks = append(ks, c)
		}
	}
	return ks
}
