package mysql

import (
	"errors"
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
	one, err := parseOne(gtid)
	if err != nil {
		return false, err
	}
	return g.covers(one, gtid)
}

func (g GTIDSet) covers(one gomysql.GTIDSet, text string) (bool, error) {
	if g.IsEmpty() {
		return false, nil
	}
	if err := g.sameFlavor(one, text); err != nil {
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
	one, err := parseOne(gtid)
	if err != nil {
		return g, false, err
	}
	if dup, err := g.covers(one, gtid); err != nil || dup {
		return g, dup, err
	}
	next := g.clone()
	return next, false, next.merge(one, gtid)
}

// With is the set after the transaction gtid, or after a whole set given
// as its string (a stream's start position): on MariaDB per domain the
// later one, on MySQL the union. The set itself stays as it is.
func (g GTIDSet) With(gtids string) (GTIDSet, error) {
	next := g.clone()
	return next, next.Extend(gtids)
}

// Extend is With in place, for a set nobody else holds: the producer's
// position, which moves at every transaction.
func (g *GTIDSet) Extend(gtids string) error {
	add, err := parseSet(gtids)
	if err != nil {
		return fmt.Errorf("GTID set %q: %w", gtids, err)
	}
	return g.merge(add, gtids)
}

// merge adds a parsed set (nil: empty) to g in place.
func (g *GTIDSet) merge(add gomysql.GTIDSet, text string) error {
	switch {
	case add == nil || add.IsEmpty():
		return nil
	case g.IsEmpty():
		g.s = add
		return nil
	}
	if err := g.sameFlavor(add, text); err != nil {
		return err
	}
	switch m := g.s.(type) {
	case *gomysql.MariadbGTIDSet:
		for d, t := range add.(*gomysql.MariadbGTIDSet).Sets {
			if cur, ok := m.Sets[d]; !ok || cur.SequenceNumber < t.SequenceNumber {
				m.Sets[d] = t.Clone()
			}
		}
	case *gomysql.MysqlGTIDSet:
		for sid, tags := range *add.(*gomysql.MysqlGTIDSet) {
			if (*m)[sid] == nil {
				(*m)[sid] = make(map[gomysql.Tag]gomysql.IntervalSlice, len(tags))
			}
			for tag, ivs := range tags {
				(*m)[sid][tag] = append((*m)[sid][tag], ivs...).Normalize()
			}
		}
	}
	return nil
}

func (g GTIDSet) clone() GTIDSet {
	if g.s == nil {
		return g
	}
	return GTIDSet{g.s.Clone()}
}

// parseOne reads one transaction's GTID.
func parseOne(gtid string) (gomysql.GTIDSet, error) {
	one, err := parseSet(gtid)
	if err == nil && one == nil {
		err = errors.New("empty")
	}
	if err != nil {
		return nil, fmt.Errorf("GTID %q: %w", gtid, err)
	}
	return one, nil
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
// given flavour (an empty set has none of its own): a copy, since the
// client adds to it on its own goroutine as it reads.
func (g GTIDSet) Stream(f Flavor) gomysql.GTIDSet {
	if g.s != nil {
		return g.s.Clone()
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

func (g GTIDSet) String() string {
	if g.s == nil {
		return ""
	}
	return g.s.String()
}
