package mysql

import (
	"fmt"
	"strconv"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// GTIDSet is a set of primary transactions, in the primary's flavour:
// MariaDB's GTID position (gtid_slave_pos: per replication domain, the last
// sequence number) or MySQL's GTID set (gtid_executed: per source UUID and
// tag, intervals of transaction numbers; "uuid:1-5:8,uuid:tag:1-3"). The
// standby's applied set is one: a transaction whose GTID it already covers
// is a duplicate (the primary never commits one GTID twice), skipped, never
// applied again. The producer's published position is another.
//
// The zero value is the empty set, of either flavour until a GTID is added.
type GTIDSet struct{ s gomysql.GTIDSet }

// ParseGTIDSet reads a GTID position such as "0-1-812,1-2-7" (MariaDB) or
// "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5" (MySQL; the server's newlines
// after commas allowed).
func ParseGTIDSet(s string) (GTIDSet, error) {
	set, err := parseSet(s)
	if err != nil {
		return GTIDSet{}, fmt.Errorf("GTID set %q: %w", s, err)
	}
	return GTIDSet{set}, nil
}

// parseSet reads either flavour, telling them apart by MySQL's colon; nil
// for the empty set.
func parseSet(s string) (gomysql.GTIDSet, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return nil, nil
	case strings.Contains(s, ":"):
		return gomysql.ParseMysqlGTIDSet(s)
	default:
		return gomysql.ParseMariadbGTIDSet(s)
	}
}

// Flavor is the flavour of the set's GTIDs, "" while it is empty.
func (g GTIDSet) Flavor() Flavor {
	switch g.s.(type) {
	case *gomysql.MysqlGTIDSet:
		return MySQL
	case *gomysql.MariadbGTIDSet:
		return MariaDB
	}
	return ""
}

// IsEmpty reports whether the set holds no transaction.
func (g GTIDSet) IsEmpty() bool { return g.s == nil || g.s.IsEmpty() }

// Covers reports whether the set holds the transaction gtid.
func (g GTIDSet) Covers(gtid string) (bool, error) {
	one, err := parseSet(gtid)
	if err != nil || one == nil {
		return false, fmt.Errorf("GTID %q: %w", gtid, orEmpty(err))
	}
	if g.IsEmpty() {
		return false, nil
	}
	if err := g.sameFlavor(one, gtid); err != nil {
		return false, err
	}
	if m, ok := g.s.(*gomysql.MariadbGTIDSet); ok {
		for d, t := range one.(*gomysql.MariadbGTIDSet).Sets {
			cur, ok := m.Sets[d]
			if !ok || cur.SequenceNumber < t.SequenceNumber {
				return false, nil
			}
		}
		return true, nil
	}
	return g.s.Contain(one), nil
}

// Add is the set after the transaction gtid, and whether the set already
// covered it: a duplicate, which leaves the set as it is.
func (g GTIDSet) Add(gtid string) (GTIDSet, bool, error) {
	dup, err := g.Covers(gtid)
	if err != nil || dup {
		return g, dup, err
	}
	next, err := g.With(gtid)
	return next, false, err
}

// With is the set after the transaction gtid, or after a whole set given
// as its string (a stream's start position): on MariaDB per domain the
// later one, on MySQL the union.
func (g GTIDSet) With(gtids string) (GTIDSet, error) {
	add, err := parseSet(gtids)
	if err != nil {
		return GTIDSet{}, fmt.Errorf("GTID set %q: %w", gtids, err)
	}
	if add == nil || add.IsEmpty() {
		return g, nil
	}
	if g.IsEmpty() {
		return GTIDSet{add}, nil
	}
	if err := g.sameFlavor(add, gtids); err != nil {
		return GTIDSet{}, err
	}
	out := g.s.Clone()
	if m, ok := out.(*gomysql.MariadbGTIDSet); ok {
		for d, t := range add.(*gomysql.MariadbGTIDSet).Sets {
			if cur, ok := m.Sets[d]; !ok || cur.SequenceNumber < t.SequenceNumber {
				m.Sets[d] = t.Clone()
			}
		}
		return GTIDSet{out}, nil
	}
	if err := out.Update(gtids); err != nil {
		return GTIDSet{}, fmt.Errorf("GTID set %q: %w", gtids, err)
	}
	return GTIDSet{out}, nil
}

// Behind counts the transactions of head that the set does not hold: over
// every replication domain on MariaDB (the sequence numbers between), over
// every source UUID and tag on MySQL.
func (g GTIDSet) Behind(head GTIDSet) (int64, error) {
	if head.IsEmpty() {
		return 0, nil
	}
	if !g.IsEmpty() {
		if err := g.sameFlavor(head.s, head.String()); err != nil {
			return -1, err
		}
	}
	var n int64
	switch h := head.s.(type) {
	case *gomysql.MariadbGTIDSet:
		for d, t := range h.Sets {
			var done uint64
			if m, ok := g.s.(*gomysql.MariadbGTIDSet); ok && m.Sets[d] != nil {
				done = m.Sets[d].SequenceNumber
			}
			if t.SequenceNumber > done {
				n += int64(t.SequenceNumber - done)
			}
		}
	case *gomysql.MysqlGTIDSet:
		have, _ := g.s.(*gomysql.MysqlGTIDSet)
		for sid, tags := range *h {
			for tag, ivs := range tags {
				var done gomysql.IntervalSlice
				if have != nil {
					done = (*have)[sid][tag]
				}
				n += missing(ivs, done)
			}
		}
	}
	return n, nil
}

// missing counts the numbers in the intervals want that are not in have
// (both normalized: sorted, apart; each [Start, Stop)).
func missing(want, have gomysql.IntervalSlice) int64 {
	var n int64
	for _, w := range want {
		n += w.Stop - w.Start
		for _, h := range have {
			lo, hi := max(w.Start, h.Start), min(w.Stop, h.Stop)
			if lo < hi {
				n -= hi - lo
			}
		}
	}
	return n
}

// First is one GTID of the set, for records that stand for a position
// rather than a transaction; "" for the empty set.
func (g GTIDSet) First() string {
	switch s := g.s.(type) {
	case *gomysql.MariadbGTIDSet:
		first := ""
		for _, t := range s.Sets {
			if gt := t.String(); first == "" || gt < first {
				first = gt
			}
		}
		return first
	case *gomysql.MysqlGTIDSet:
		first := ""
		for sid, tags := range *s {
			for tag, ivs := range tags {
				gt := sid.String()
				if t := tag.String(); t != "" {
					gt += ":" + t
				}
				if gt += ":" + strconv.FormatInt(ivs[0].Start, 10); first == "" || gt < first {
					first = gt
				}
			}
		}
		return first
	}
	return ""
}

// Stream is the set as the binlog client takes it, for a primary of the
// given flavour (an empty set has none of its own).
func (g GTIDSet) Stream(f Flavor) gomysql.GTIDSet {
	if g.s != nil {
		return g.s
	}
	if f == MySQL {
		s := gomysql.NewMysqlGTIDSet()
		return &s
	}
	s, _ := gomysql.ParseMariadbGTIDSet("")
	return s
}

func (g GTIDSet) sameFlavor(o gomysql.GTIDSet, text string) error {
	if g.Flavor() != (GTIDSet{o}).Flavor() {
		return fmt.Errorf("GTIDs %q and the set %q are of different servers' flavours (MariaDB's domain-server-sequence, MySQL's uuid:number): the primary log and the standby's checkpoint come from another primary than this one", text, g.String())
	}
	return nil
}

func orEmpty(err error) error {
	if err == nil {
		return fmt.Errorf("empty")
	}
	return err
}

func (g GTIDSet) String() string {
	if g.s == nil {
		return ""
	}
	return g.s.String()
}
