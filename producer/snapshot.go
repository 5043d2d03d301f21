package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/progress"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/schemas"
)

// snapshotCommand bootstraps a standby from nothing: a consistent snapshot
// of the replicated tables, taken while the primary keeps writing, is
// published to an empty primary log, followed by its GTID position, where
// the producer then streams from. Every change is either in the snapshot
// or after its position, never both.
func snapshotCommand() *cobra.Command {
	var chunkRows int
	cmd := service.Task("snapshot", "Publish a consistent snapshot of the replicated tables to an empty primary log; the producer then streams from the snapshot's GTID position",
		func(ctx context.Context, cfg *config.Config, out, progress io.Writer) error {
			if chunkRows < 1 {
				return fmt.Errorf("--chunk-rows %d: want at least 1", chunkRows)
			}
			return snapshot(ctx, cfg, service.Logger(cfg.Log, "producer"), chunkRows, out, progress)
		})
	cmd.Flags().IntVar(&chunkRows, "chunk-rows", 1000, "rows per snapshot transaction (the standby commits each on its own)")
	return cmd
}

func snapshot(ctx context.Context, cfg *config.Config, log *slog.Logger, chunkRows int, out, progressOut io.Writer) error {
	p, err := open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer p.db.Close()
	db, opts, pos := p.db, p.opts, p.pos
	if pos != nil {
		return fmt.Errorf("the primary log %s already holds a stream (it resumes at GTID %q): a snapshot starts a new stream on an empty topic. To bootstrap the standby again, stop the three services, delete both topics, drop the replicated databases on the standby and delete its row in lockstep.checkpoint, then run producer snapshot again",
			cfg.Kafka.PrimaryTopic, pos.GTIDSet)
	}

	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect to the primary: %w", err)
	}
	defer conn.Close()
	snap, err := beginSnapshot(ctx, conn, p.flavor)
	if err != nil {
		return err
	}
	tables, err := cacherule.BaseTables(ctx, conn, cfg.Primary.Databases)
	if err != nil {
		return err
	}
	estimate, err := mysql.EstimateRows(ctx, conn, tables)
	if err != nil {
		return err
	}
	log.Info("snapshot taken", "gtid_position", snap.gtids, "binlog_file", snap.file, "binlog_pos", snap.pos, "tables", len(tables), "estimated_rows", estimate)

	w, err := newWriter(cfg, opts, log)
	if err != nil {
		return err
	}
	defer w.Client.Close()
	items := kafka.Queue(cfg.Producer.BatchRows)
	meter := progress.New(progressOut, "snapshot", "rows", estimate)
	s := &snapshotter{cfg: cfg, conn: conn, snap: snap, chunkRows: chunkRows, out: items, meter: meter, live: newLiveSchema(db)}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(gctx, items) })
	g.Go(func() error {
		defer close(items)
		return s.publish(gctx, tables)
	})
	if err := g.Wait(); err != nil {
		return fmt.Errorf("snapshot at GTID %q, after %d rows: %w; the primary log may end inside the unfinished snapshot, which the producer refuses to stream after: bootstrap again as described in the README (Bootstrap a standby)", snap.gtids, s.rows, err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("snapshot interrupted after %d rows: %w", s.rows, ctx.Err())
	}
	meter.Done()
	_, err = fmt.Fprintf(out, "snapshot of %d rows in %d tables published to %s at GTID position %q; start the producer: it streams from there\n",
		s.rows, len(tables), cfg.Kafka.PrimaryTopic, snap.gtids)
	return err
}

// snapshotPoint is where a consistent snapshot stands in the binlog.
type snapshotPoint struct {
	gtids    string // the GTID position: every transaction in it is in the snapshot, none after
	file     string
	pos      uint32
	serverID uint32
	at       time.Time
}

// beginSnapshot opens a consistent-snapshot transaction on conn and reads
// the binlog position it corresponds to exactly. MariaDB tells it
// (binlog_snapshot_file/position, turned into a GTID position); MySQL does
// not, so there commits stop for the moment it takes to open the snapshot
// and read the position (FLUSH TABLES WITH READ LOCK, as mysqldump
// --single-transaction --source-data does): with none between, the GTIDs
// executed then are exactly those in the snapshot.
func beginSnapshot(ctx context.Context, conn *sql.Conn, flavor mysql.Flavor) (p *snapshotPoint, err error) {
	open := []string{
		// The scan may wait on Kafka; the server must not give up on us.
		"SET SESSION net_write_timeout = 3600",
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
	}
	if flavor == mysql.MySQL {
		open = append(open, "FLUSH TABLES WITH READ LOCK")
		defer func() {
			if _, uerr := conn.ExecContext(ctx, "UNLOCK TABLES"); uerr != nil && err == nil {
				err = fmt.Errorf("release the primary's global read lock after opening the snapshot: %w", uerr)
			}
		}()
	}
	for _, q := range append(open, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY") {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			if q == "FLUSH TABLES WITH READ LOCK" && mysql.ErrorNumber(err) == 1227 {
				err = fmt.Errorf("%w: the primary user needs RELOAD on MySQL (GRANT RELOAD ON *.* TO it) to stop commits for the instant it takes to read the snapshot's GTID position", err)
			}
			return nil, fmt.Errorf("open a consistent snapshot on the primary (%s): %w", q, err)
		}
	}
	p = &snapshotPoint{at: time.Now()}
	if err := conn.QueryRowContext(ctx, "SELECT @@server_id").Scan(&p.serverID); err != nil {
		return nil, fmt.Errorf("read the primary's server_id: %w", err)
	}
	if flavor == mysql.MySQL {
		return p, binlogStatus(ctx, conn, p)
	}
	status, err := showStatus(ctx, conn, "SHOW STATUS LIKE 'binlog_snapshot_%'")
	if err != nil {
		return nil, fmt.Errorf("read the snapshot's binlog position: %w", err)
	}
	p.file = status["binlog_snapshot_file"]
	if p.file == "" {
		return nil, service.Permanentf("the primary reports no binlog_snapshot_file: the snapshot needs the binlog on")
	}
	if _, err := fmt.Sscan(status["binlog_snapshot_position"], &p.pos); err != nil {
		return nil, fmt.Errorf("binlog_snapshot_position %q: %w", status["binlog_snapshot_position"], err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", p.file, p.pos).Scan(&p.gtids); err != nil {
		return nil, fmt.Errorf("turn the snapshot's binlog position %s:%d into a GTID position: %w", p.file, p.pos, err)
	}
	return p, nil
}

// showStatus reads a SHOW statement's name/value rows, names in lower case.
func showStatus(ctx context.Context, conn *sql.Conn, q string) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	status := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		status[strings.ToLower(k)] = v
	}
	return status, rows.Err()
}

// binlogStatus reads MySQL's binlog file, position and executed GTIDs, in
// one round trip while commits wait: SHOW BINARY LOG STATUS (8.2 and
// later; SHOW MASTER STATUS before).
func binlogStatus(ctx context.Context, conn *sql.Conn, p *snapshotPoint) error {
	var doDB, ignoreDB sql.NullString
	scan := func(q string) error {
		return conn.QueryRowContext(ctx, q).Scan(&p.file, &p.pos, &doDB, &ignoreDB, &p.gtids)
	}
	err := scan("SHOW BINARY LOG STATUS")
	if mysql.ErrorNumber(err) == 1064 {
		err = scan("SHOW MASTER STATUS")
	}
	if errors.Is(err, sql.ErrNoRows) {
		return service.Permanentf("the primary reports no binlog position (SHOW BINARY LOG STATUS is empty): the snapshot needs the binlog on")
	}
	if err != nil {
		return fmt.Errorf("read the snapshot's binlog position and GTIDs: %w", err)
	}
	p.gtids = strings.ReplaceAll(p.gtids, "\n", "")
	return nil
}

// snapshotter turns the snapshot into records: for each database and table
// its CREATE statement (IF NOT EXISTS: the standby may have them), then its
// rows in transactions of chunkRows, then the snapshot's position.
type snapshotter struct {
	cfg       *config.Config
	conn      *sql.Conn
	snap      *snapshotPoint
	chunkRows int
	out       chan<- kafka.Item
	meter     *progress.Meter
	live      *liveSchema
	rows      int64
}

func (s *snapshotter) publish(ctx context.Context, tables []string) error {
	created := map[string]bool{}
	for _, name := range tables {
		db, table, _ := strings.Cut(name, ".")
		if !created[db] {
			created[db] = true
			var n, stmt string
			if err := s.conn.QueryRowContext(ctx, "SHOW CREATE DATABASE "+mysql.Quote(db)).Scan(&n, &stmt); err != nil {
				return fmt.Errorf("read the definition of database %s: %w", db, err)
			}
			if err := s.ddl(ctx, db, "", ifNotExists(stmt, "CREATE DATABASE ")); err != nil {
				return err
			}
		}
		var n, stmt string
		if err := s.conn.QueryRowContext(ctx, "SHOW CREATE TABLE "+mysql.QuoteTable(db, table)).Scan(&n, &stmt); err != nil {
			return fmt.Errorf("read the definition of table %s: %w", name, err)
		}
		if err := s.ddl(ctx, db, db, ifNotExists(stmt, "CREATE TABLE ")); err != nil {
			return err
		}
		if err := s.table(ctx, db, table); err != nil {
			return err
		}
	}
	return s.send(ctx, positionRecord(s.snap.gtids))
}

// ifNotExists makes a CREATE statement leave an existing object alone.
func ifNotExists(stmt, prefix string) string {
	if !strings.HasPrefix(stmt, prefix) {
		return stmt
	}
	return prefix + "IF NOT EXISTS " + stmt[len(prefix):]
}

func (s *snapshotter) ddl(ctx context.Context, db, schema, stmt string) error {
	r := s.record(schemas.OpDDL, db, "")
	r.Statement, r.Schema, r.Txn.Last = stmt, schema, true
	return s.send(ctx, r)
}

// record is a snapshot record: every one names the snapshot's position.
func (s *snapshotter) record(op schemas.Op, db, table string) *schemas.Record {
	return &schemas.Record{
		SchemaVersion: schemas.SchemaVersion, Op: op, Database: db, Table: table,
		Txn:    schemas.Txn{GTID: markerGTID(s.snap.gtids), Snapshot: true},
		Source: schemas.Source{ServerID: s.snap.serverID, File: s.snap.file, Pos: s.snap.pos, CommitTimeMS: s.snap.at.UnixMilli()},
	}
}

// table publishes the rows of one table as they are in the snapshot, in
// transactions of chunkRows rows.
func (s *snapshotter) table(ctx context.Context, db, table string) error {
	meta, err := s.live.columns(ctx, db, table)
	if err != nil {
		return err
	}
	cols, names, stored := make([]schemas.Column, len(meta)), make([]string, len(meta)), make([]string, len(meta))
	for i, m := range meta {
		cols[i], names[i], stored[i] = m.Record(), m.Name, m.Stored
	}
	var pending *schemas.Record
	index := 0
	err = cacherule.ScanTable(ctx, s.conn, mysql.QuoteTable(db, table), names, func(row cacherule.Row) error {
		if len(row.Names) != len(cols) {
			return fmt.Errorf("table %s.%s changed while it was read: %d columns, %d at the start", db, table, len(row.Names), len(cols))
		}
		r := s.record(schemas.OpSnapshot, db, table)
		after, err := row.RecordImage(cols, stored)
		if err != nil {
			return fmt.Errorf("table %s.%s: %w", db, table, err)
		}
		r.Columns, r.After = cols, after
		r.Key = keyOf(cols, r.After)
		if pending != nil {
			pending.Txn.Last = index == s.chunkRows
			if err := s.send(ctx, pending); err != nil {
				return err
			}
			if index == s.chunkRows {
				index = 0
			}
		}
		r.Txn.Index = index
		index++
		pending = r
		s.rows++
		s.meter.Add(1)
		return nil
	})
	if err != nil || pending == nil {
		return err
	}
	pending.Txn.Last = true
	return s.send(ctx, pending)
}

func (s *snapshotter) send(ctx context.Context, r *schemas.Record) error {
	return send(ctx, s.out, s.cfg.Kafka.PrimaryTopic, r)
}
