// Package crashpoint lets fault tests kill a service with SIGKILL at an exact
// place in its work (say, between a standby COMMIT and the publish), which a
// random kill -9 would hit only by luck. LOCKSTEP_CRASHPOINT=name:n kills the
// process the n-th time it passes the point called name. Unset, a point costs
// one comparison.
package crashpoint

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

var (
	armed string
	after int64 = 1
	hits  atomic.Int64
)

func init() {
	spec := os.Getenv("LOCKSTEP_CRASHPOINT")
	if spec == "" {
		return
	}
	name, n, _ := strings.Cut(spec, ":")
	armed = name
	if v, err := strconv.ParseInt(n, 10, 64); err == nil && v > 0 {
		after = v
	}
}

// Names of the points, one per window that matters.
const (
	// ApplierCommitted: the standby committed a transaction that is not yet
	// handed to the standby-log writer.
	ApplierCommitted = "applier-committed"
	// ProducerMidTxn: a record was handed to an open Kafka transaction.
	ProducerMidTxn = "producer-mid-txn"
	// CacheWritten: a batch is in Redis, its consumer offsets not committed.
	CacheWritten = "cache-written"
)

// Hit kills the process with SIGKILL when the armed point is reached for the
// configured time.
func Hit(name string) {
	if armed == "" || name != armed {
		return
	}
	if hits.Add(1) == after {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
