package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/schemas"
)

// TestSnapshotBootstrapsAStandbyDuringWrites bootstraps a standby from
// nothing: 200,000 rows and a table of every column type on the primary, a
// workload writing all along; producer snapshot publishes them, the
// services start after it, and the standby and its cache end equal to the
// primary: nothing lost between the snapshot and the stream, nothing
// applied twice (a row inserted twice would stop the applier).
func TestSnapshotBootstrapsAStandbyDuringWrites(t *testing.T) {
	e := newEnv(t)
	e.Cfg.Cache.Rules = append(e.Cfg.Cache.Rules, config.Rule{Table: e.DB + ".types", Keys: []string{"types:{id}"}, Action: "refresh", Format: "hash"})
	createTables(t, e)
	const rows = 200_000
	testenv.Exec(t, e.Primary,
		fmt.Sprintf("INSERT INTO %s.items SELECT seq, CONCAT('item ', seq), seq / 4, '2024-01-01' + INTERVAL seq SECOND FROM %s", e.DB, e.Seq(rows)),
		fmt.Sprintf("INSERT INTO %s.users SELECT seq, CONCAT('u', seq, '@example.com'), 'Ada 🦊', seq, X'00FF' FROM %s", e.DB, e.Seq(100)),
		fmt.Sprintf(typesTable, e.DB),
	)
	for _, r := range typeRows {
		testenv.Exec(t, e.Primary, "SET SESSION sql_mode = ''; INSERT INTO "+e.DB+".types ("+typeColumns+") VALUES ("+r+")")
	}

	bin, err := plainBinDir() // the race detector would make 200,000 rows slow
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var writes atomic.Int64
	done := make(chan error, 1)
	go func() { done <- churn(ctx, e, rows, &writes) }()
	stopWrites := func() {
		stop()
		if err := <-done; err != nil {
			t.Fatalf("workload: %v", err)
		}
	}
	defer stop()

	cfgPath := writeConfig(t, e.Cfg)
	out := start(t, cfgPath, filepath.Join(bin, "producer"), "snapshot", "--chunk-rows", "700").waitOK(5 * time.Minute)
	mustContain(t, out, "snapshot taken", "rows in 4 tables published to "+e.Cfg.Kafka.PrimaryTopic, "start the producer")
	summary := regexp.MustCompile(`snapshot: \d+ rows in \S+ \(\d+ rows/s\)`).FindString(out)
	if summary == "" {
		t.Errorf("no progress summary in the snapshot's output:\n%s", out)
	}
	during := writes.Load()

	start(t, cfgPath, filepath.Join(bin, "producer")).waitTailing(e.Primary, e.Cfg.Producer.ServerID)
	start(t, cfgPath, filepath.Join(bin, "storage-applier"))
	start(t, cfgPath, filepath.Join(bin, "cache-applier"))
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		return writes.Load() > during+200, "the workload has not written 200 more transactions since the snapshot"
	})
	stopWrites()
	if during == 0 {
		t.Fatal("the workload wrote nothing while the snapshot ran: the test shows nothing about writes during a snapshot")
	}
	consistent(t, e, 4*time.Minute)

	// The primary log: the snapshot's DDL and rows, its position, then the
	// stream; a second snapshot would start another stream on it: refused.
	var snapRows, ddl int
	var position string
	err = kafka.ScanTopic(context.Background(), clientOpts(t, e), e.Cfg.Kafka.PrimaryTopic, func(kr *kgo.Record, r *schemas.Record) error {
		switch {
		case r.Op == schemas.OpSnapshot && position == "":
			snapRows++
		case r.Txn.Snapshot && r.Op == schemas.OpDDL && position == "":
			ddl++
		case r.Op == schemas.OpPosition && position == "":
			position = r.Source.GTIDSet
		case position == "" || r.Txn.Snapshot:
			return fmt.Errorf("a %s record at offset %d on the wrong side of the snapshot's position record", r.Op, kr.Offset)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if snapRows < rows || ddl != 5 || position == "" {
		t.Fatalf("primary log: %d snapshot rows (want at least %d), %d snapshot DDL records (want 5: a database and 4 tables), position %q", snapRows, rows, ddl, position)
	}
	t.Logf("%s, at GTID %s; %d writes before it ended, %d in all", summary, position, during, writes.Load())
	mustContain(t, start(t, cfgPath, filepath.Join(bin, "producer"), "snapshot").waitExit(time.Minute), "already holds a stream")
}

// churn writes to the primary until ctx ends: updates, inserts and deletes
// of items and users, each its own transaction, counted in n.
func churn(ctx context.Context, e *testenv.Env, rows int, n *atomic.Int64) error {
	next := rows
	for ctx.Err() == nil {
		id := 1 + rand.IntN(rows)
		var q string
		switch n.Load() % 4 {
		case 0:
			q = fmt.Sprintf("UPDATE %s.items SET price = price + 1, title = 'changed' WHERE id = %d", e.DB, id)
		case 1:
			next++
			q = fmt.Sprintf("INSERT INTO %s.items VALUES (%d, 'new', 1.5, NOW(6))", e.DB, next)
		case 2:
			q = fmt.Sprintf("DELETE FROM %s.items WHERE id = %d", e.DB, id)
		default:
			q = fmt.Sprintf("UPDATE %s.users SET balance = balance + 1 WHERE id = %d", e.DB, 1+id%100)
		}
		if _, err := e.Primary.ExecContext(ctx, q); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: %w", q, err)
		}
		n.Add(1)
	}
	return nil
}
