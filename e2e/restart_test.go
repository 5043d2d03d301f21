package e2e

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/schemas"
)

// writeBatch commits n transactions on the primary, each inserting a user
// and an item and updating an earlier user.
func writeBatch(t *testing.T, e *testenv.Env, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		tx, err := e.Primary.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			fmt.Sprintf("INSERT INTO %s.users VALUES (%d, 'u%d@x', 'n', %d, NULL)", e.DB, i, i, i),
			fmt.Sprintf("INSERT INTO %s.items VALUES (%d, 'item', %d.5, NOW(6))", e.DB, i, i),
			fmt.Sprintf("UPDATE %s.users SET balance = balance + 1 WHERE id = %d", e.DB, i/2),
		} {
			if _, err := tx.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// Each service stopped with SIGTERM mid-stream and started again: nothing
// lost, nothing applied or published twice.
func TestServicesRestartMidStream(t *testing.T) {
	e := newEnv(t)
	p := startPipeline(t, e)
	createTables(t, e)
	const batch = 150
	next := 0
	write := func() { writeBatch(t, e, next, batch); next += batch }

	restart := func(old *proc, name string) *proc {
		old.stop(syscall.SIGTERM)
		if _, err := old.exited(); err != nil {
			t.Fatalf("%s did not stop cleanly on SIGTERM: %v", name, err)
		}
		write() // while it is down
		return start(t, p.cfgPath, name)
	}
	write()
	p.producer = restart(p.producer, "producer")
	write()
	p.applier = restart(p.applier, "storage-applier")
	write()
	p.cacheApplier = restart(p.cacheApplier, "cache-applier")
	write()
	// all three at once
	for _, s := range []*proc{p.producer, p.applier, p.cacheApplier} {
		s.stop(syscall.SIGTERM)
	}
	write()
	p.producer = start(t, p.cfgPath, "producer")
	p.applier = start(t, p.cfgPath, "storage-applier")
	p.cacheApplier = start(t, p.cfgPath, "cache-applier")
	write()

	consistent(t, e, 60*time.Second)
	if n := testenv.Count(t, e.Standby, e.DB+".items"); n != next {
		t.Fatalf("standby has %d items, want %d", n, next)
	}
	assertExactlyOnce(t, e)
}

// MariaDB transactions in several GTID domains, and under another server
// id (what a primary that was failed over to, or a multi-source setup,
// writes), interleaved, with the producer and the storage-applier
// restarted between them: their positions are sets over every domain, so
// nothing is lost or applied twice.
func TestSeveralGTIDDomains(t *testing.T) {
	e := newEnv(t)
	e.Only(t, mysql.MariaDB, "gtid_domain_id")
	p := startPipeline(t, e)
	createTables(t, e)
	next := 0
	inDomain := func(domain, serverID int) {
		t.Helper()
		stmts := []string{fmt.Sprintf("SET SESSION gtid_domain_id = %d", domain), fmt.Sprintf("SET SESSION server_id = %d", serverID)}
		for range 20 {
			stmts = append(stmts, fmt.Sprintf("INSERT INTO %s.items VALUES (%d, 'domain %d', %d, NOW(6))", e.DB, next, domain, serverID))
			next++
		}
		session(t, e.Primary, stmts...)
	}
	var primaryID int
	if err := e.Primary.QueryRow("SELECT @@server_id").Scan(&primaryID); err != nil {
		t.Fatal(err)
	}
	inDomain(0, primaryID)
	inDomain(7, primaryID)
	p.producer.stop(syscall.SIGTERM)
	inDomain(7, 4242)
	inDomain(0, primaryID)
	p.producer = start(t, p.cfgPath, "producer")
	p.applier.stop(syscall.SIGTERM)
	inDomain(9, primaryID)
	inDomain(7, primaryID)
	p.applier = start(t, p.cfgPath, "storage-applier")
	inDomain(0, primaryID)
	consistent(t, e, 60*time.Second)
	if n := testenv.Count(t, e.Standby, e.DB+".items"); n != next {
		t.Fatalf("standby has %d items, want %d", n, next)
	}
	assertExactlyOnce(t, e)
}

// assertExactlyOnce checks that every row change is in the primary log once,
// and every primary-log record is in the standby log once.
func assertExactlyOnce(t *testing.T, e *testenv.Env) {
	t.Helper()
	assertRepublished(t, e, func(int64) int { return 1 })
}

// assertRepublished checks that no row was published twice to the primary
// log, and that each primary-log record is in the standby log as many
// times as want says for its offset.
func assertRepublished(t *testing.T, e *testenv.Env, want func(offset int64) int) {
	t.Helper()
	seen := make(map[string]int64)
	data := make(map[int64]bool)
	for _, r := range records(t, e, e.Cfg.Kafka.PrimaryTopic) {
		rec, err := schemas.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		data[r.Offset] = true
		if rec.Op == schemas.OpPosition {
			// No row: the producer marks where it is when the binlog
			// moves on without the test's tables (other tests' writes),
			// and on MySQL every mark names the set's first GTID.
			continue
		}
		id := fmt.Sprintf("%s#%d", rec.Txn.GTID, rec.Txn.Index)
		if first, ok := seen[id]; ok {
			t.Fatalf("row %s published twice to the primary log, at offsets %d and %d", id, first, r.Offset)
		}
		seen[id] = r.Offset
	}
	got := make(map[int64]int)
	for _, r := range records(t, e, e.Cfg.Kafka.StandbyTopic) {
		rec, err := schemas.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		got[rec.Standby.PrimaryOffset]++
	}
	for off := range data {
		if got[off] != want(off) {
			t.Fatalf("primary offset %d is %d times in the standby log, want %d", off, got[off], want(off))
		}
	}
	if len(got) != len(data) {
		t.Fatalf("standby log names %d primary offsets, primary log has %d records", len(got), len(data))
	}
}

// Every standby-log record is published only after the standby committed
// it: whenever a reader sees one, the standby's checkpoint is already there.
func TestStandbyLogOnlyAfterCommit(t *testing.T) {
	e := newEnv(t)
	startPipeline(t, e)
	createTables(t, e)
	opts := clientOpts(t, e)
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumeTopics(e.Cfg.Kafka.StandbyTopic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50*time.Millisecond),
	)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	const txns = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		writeBatch(t, e, 0, txns)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	checked := 0
	for checked < 3*txns {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("after %d records: %v", checked, err)
		}
		for _, r := range fs.Records() {
			rec, err := schemas.Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			var applied int64
			if err := e.Standby.QueryRow("SELECT applied_offset FROM lockstep.checkpoint WHERE name = ?", e.Cfg.Applier.Name).Scan(&applied); err != nil {
				t.Fatal(err)
			}
			if applied < rec.Standby.PrimaryOffset {
				t.Fatalf("standby log shows primary offset %d while the standby has only committed up to %d", rec.Standby.PrimaryOffset, applied)
			}
			if rec.Op != schemas.OpDDL {
				checked++
			}
		}
	}
	<-done
}
