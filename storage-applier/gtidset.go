package main

import (
	"fmt"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// gtidSet is the set of primary transactions the standby has applied, as
// MariaDB keeps gtid_slave_pos: per replication domain, the last sequence
// number. A transaction whose GTID it already covers is a duplicate (the
// primary never commits one GTID twice): it is skipped, never applied again.
type gtidSet struct{ s *gomysql.MariadbGTIDSet }

func parseGTIDSet(s string) (gtidSet, error) {
	set, err := gomysql.ParseMariadbGTIDSet(s)
	if err != nil {
		return gtidSet{}, fmt.Errorf("GTID set %q: %w", s, err)
	}
	return gtidSet{set.(*gomysql.MariadbGTIDSet)}, nil
}

// covers reports whether the transaction gtid is at or below the set.
func (g gtidSet) covers(gtid string) (bool, error) {
	t, err := gomysql.ParseMariadbGTID(gtid)
	if err != nil {
		return false, fmt.Errorf("GTID %q: %w", gtid, err)
	}
	cur, ok := g.s.Sets[t.DomainID]
	return ok && cur.SequenceNumber >= t.SequenceNumber, nil
}

// add is the set after the transaction gtid, and whether the set already
// covered it: a duplicate, which leaves the set as it is.
func (g gtidSet) add(gtid string) (gtidSet, bool, error) {
	dup, err := g.covers(gtid)
	if err != nil || dup {
		return g, dup, err
	}
	next, err := g.with(gtid)
	return next, false, err
}

// with is the set after the transaction gtid, or after a whole set given
// as its string (a stream's start position): per domain, the later one.
func (g gtidSet) with(gtids string) (gtidSet, error) {
	add, err := parseGTIDSet(gtids)
	if err != nil {
		return gtidSet{}, err
	}
	out := gtidSet{g.s.Clone().(*gomysql.MariadbGTIDSet)}
	for d, t := range add.s.Sets {
		if cur, ok := out.s.Sets[d]; !ok || cur.SequenceNumber < t.SequenceNumber {
			out.s.Sets[d] = t.Clone()
		}
	}
	return out, nil
}

func (g gtidSet) String() string { return g.s.String() }
