package main

import "github.com/lockstep-dr/lockstep/schemas"

// preparedXA is an XA transaction the binlog shows prepared and not yet
// committed or rolled back. MariaDB writes its rows at XA PREPARE, in a
// group of their own, and its outcome later as XA COMMIT or XA ROLLBACK in
// another group; other transactions commit in between. Its rows reach the
// standby only at XA COMMIT, as the transaction of the commit's GTID, in the
// commit's place in the primary log.
type preparedXA struct {
	xid  string // as the server writes it: X'…',X'…',format
	gtid string // of the XA PREPARE group
	// from is the GTID position just before the prepare group: a producer
	// that restarts reads the binlog again from there to find its rows.
	from string
	rows []*schemas.Record // in scope; their txn fields are set at commit
}

// xaBook holds the prepared XA transactions, oldest first. Their rows are
// in memory only: the primary log never holds a transaction that may still
// roll back. What makes that safe across restarts is the resume position
// each published transaction records (Source.Resume): while any XA
// transaction is pending, the producer restarts from before the oldest
// one's prepare and reads again what it already published, publishing
// nothing of it twice.
type xaBook struct{ open []*preparedXA }

func (b *xaBook) add(p *preparedXA) { b.open = append(b.open, p) }

// take removes the transaction xid and returns its rows; ok is false when
// its XA PREPARE was never read.
func (b *xaBook) take(xid string) (rows []*schemas.Record, ok bool) {
	for i, p := range b.open {
		if p.xid == xid {
			b.open = append(b.open[:i], b.open[i+1:]...)
			return p.rows, true
		}
	}
	return nil, false
}

// resume is where a restart must read the binlog from: before the oldest
// pending prepare; "" when none is pending.
func (b *xaBook) resume() string {
	if len(b.open) == 0 {
		return ""
	}
	return b.open[0].from
}

// pending names the oldest pending transaction, for logs.
func (b *xaBook) pending() (xid, gtid string, n int) {
	if len(b.open) == 0 {
		return "", "", 0
	}
	return b.open[0].xid, b.open[0].gtid, len(b.open)
}
