package mysql

import (
	"fmt"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// GTIDSet is a set of primary transactions as MariaDB keeps a GTID
// position (gtid_slave_pos): per replication domain, the last sequence
// number. The standby's applied set is one: a transaction whose GTID it
// already covers is a duplicate (the primary never commits one GTID twice),
// skipped, never applied again. The producer's published position is
// another.
type GTIDSet struct{ s *gomysql.MariadbGTIDSet }

// ParseGTIDSet reads a GTID position such as "0-1-812,1-2-7".
func ParseGTIDSet(s string) (GTIDSet, error) {
	set, err := gomysql.ParseMariadbGTIDSet(s)
	if err != nil {
		return GTIDSet{}, fmt.Errorf("GTID set %q: %w", s, err)
	}
	return GTIDSet{set.(*gomysql.MariadbGTIDSet)}, nil
}

// Covers reports whether the transaction gtid is at or below the set.
func (g GTIDSet) Covers(gtid string) (bool, error) {
	t, err := gomysql.ParseMariadbGTID(gtid)
	if err != nil {
		return false, fmt.Errorf("GTID %q: %w", gtid, err)
	}
	cur, ok := g.s.Sets[t.DomainID]
	return ok && cur.SequenceNumber >= t.SequenceNumber, nil
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
// as its string (a stream's start position): per domain, the later one.
func (g GTIDSet) With(gtids string) (GTIDSet, error) {
	add, err := ParseGTIDSet(gtids)
	if err != nil {
		return GTIDSet{}, err
	}
	out := GTIDSet{g.s.Clone().(*gomysql.MariadbGTIDSet)}
	for d, t := range add.s.Sets {
		if cur, ok := out.s.Sets[d]; !ok || cur.SequenceNumber < t.SequenceNumber {
			out.s.Sets[d] = t.Clone()
		}
	}
	return out, nil
}

func (g GTIDSet) String() string { return g.s.String() }
