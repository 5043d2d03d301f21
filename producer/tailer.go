package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/schemas"
)

// tailer reads the primary's binlog from a GTID position and turns every
// committed transaction in scope into records, sent in order on out. A
// transaction's records carry their index and, on the last one, the last-row
// flag and the GTID position after the transaction, where a restart resumes.
type tailer struct {
	cfg config.Config
	log *slog.Logger
	out chan<- kafka.Item

	charsets charsets
	// live gives column metadata when the binlog does not carry it.
	live       *liveSchema
	warnedLive bool
	pos        *gomysql.MariadbGTIDSet
	file       string
	tables     map[*replication.TableMapEvent]*table

	// the open transaction
	gtid    *gomysql.MariadbGTID
	ddl     bool // a standalone (DDL) event group: it ends after its statement
	index   int
	pending *schemas.Record // held back until we know whether it is the last
}

func newTailer(cfg config.Config, log *slog.Logger, cs charsets, live *liveSchema, pos string, out chan<- kafka.Item) (*tailer, error) {
	set, err := gomysql.ParseMariadbGTIDSet(pos)
	if err != nil {
		return nil, service.Permanentf("resume position %q is not a MariaDB GTID set: %w", pos, err)
	}
	return &tailer{cfg: cfg, log: log, out: out, charsets: cs, live: live, pos: set.(*gomysql.MariadbGTIDSet), tables: make(map[*replication.TableMapEvent]*table)}, nil
}

func (t *tailer) run(ctx context.Context) error {
	host, portStr, err := net.SplitHostPort(t.cfg.Primary.Address)
	if err != nil {
		return service.Permanentf("primary.address = %s: %w", t.cfg.Primary.Address, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return service.Permanentf("primary.address = %s: bad port: %w", t.cfg.Primary.Address, err)
	}
	tlsCfg, err := t.cfg.Primary.TLS.Build("primary.tls", t.cfg.Primary.Address)
	if err != nil {
		return service.Permanent(err)
	}
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID:                t.cfg.Producer.ServerID,
		Flavor:                  gomysql.MariaDBFlavor,
		Host:                    host,
		Port:                    uint16(port),
		User:                    t.cfg.Primary.User,
		Password:                t.cfg.Primary.Password,
		TLSConfig:               tlsCfg,
		TimestampStringLocation: time.UTC,
		HeartbeatPeriod:         5 * time.Second,
		ReadTimeout:             30 * time.Second,
		// A broken connection is the supervisor's to handle: it resumes from
		// the primary log, the one source of truth for the position.
		DisableRetrySync: true,
		Logger:           t.log.With("component", "binlog"),
	})
	defer syncer.Close()
	stream, err := syncer.StartSyncGTID(t.pos)
	var denied *gomysql.MyError
	if errors.As(err, &denied) && (denied.Code == gomysql.ER_ACCESS_DENIED_ERROR || denied.Code == gomysql.ER_SPECIFIC_ACCESS_DENIED_ERROR) {
		// The password worked for the preflight: the privilege is missing.
		return service.Permanentf("start binlog stream from GTID %s: %w: the primary user %s may not read the binlog; GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO it (REPLICATION CLIENT on MySQL), then restart the producer",
			t.pos, err, t.cfg.Primary.User)
	}
	if err != nil {
		return fmt.Errorf("start binlog stream from GTID %s: %w", t.pos, err)
	}
	t.log.Info("tailing binlog", "primary", t.cfg.Primary.Address, "from_gtid", t.pos.String())
	for {
		ev, err := stream.GetEvent(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return classifyStreamError(err, t.pos.String())
		}
		if err := t.handle(ctx, ev); err != nil {
			return err
		}
	}
}

// classifyStreamError turns the server's refusals into errors an operator
// can act on. 1236 is ER_MASTER_FATAL_ERROR_READING_BINLOG: the binlog we
// need is gone, and only a new bootstrap can fix that.
func classifyStreamError(err error, pos string) error {
	var me *gomysql.MyError
	if errors.As(err, &me) && me.Code == 1236 {
		return service.Permanentf("the primary cannot send its binlog from GTID %s (%s): the binlog the producer needs was probably purged; re-bootstrap the standby and start the producer on an empty primary log topic", pos, me.Message)
	}
	return fmt.Errorf("read binlog after GTID %s: %w", pos, err)
}

func (t *tailer) handle(ctx context.Context, ev *replication.BinlogEvent) error {
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		t.file = string(e.NextLogName)
	case *replication.MariadbGTIDEvent:
		if t.gtid != nil {
			return fmt.Errorf("binlog GTID %s began before transaction %s ended", e.GTID.String(), t.gtid.String())
		}
		g := e.GTID
		t.gtid, t.ddl, t.index, t.pending = &g, e.IsStandalone(), 0, nil
	case *replication.RowsEvent:
		return t.rows(ctx, ev.Header, e)
	case *replication.XIDEvent:
		return t.commit(ctx)
	case *replication.QueryEvent:
		return t.query(ctx, ev.Header, e)
	}
	return nil
}

func (t *tailer) query(ctx context.Context, h *replication.EventHeader, e *replication.QueryEvent) error {
	q := strings.TrimSpace(string(e.Query))
	switch {
	case t.gtid == nil:
		return nil // before our first GTID: the tail of a group we resumed after
	case strings.EqualFold(q, "BEGIN"):
		return nil
	case strings.EqualFold(q, "COMMIT"):
		return t.commit(ctx)
	case !t.ddl:
		// e.g. SAVEPOINT inside a transaction: row events carry the changes.
		t.log.Debug("statement inside a transaction ignored", "gtid", t.gtid.String(), "query", q)
		return nil
	}
	t.live.forget()
	schema := string(e.Schema)
	db := ddlDatabase(schema, q)
	if mysql.Replicated(db, t.cfg.Primary.Databases) {
		t.log.Info("ddl", "gtid", t.gtid.String(), "database", db, "statement", q)
		if err := t.emit(ctx, &schemas.Record{Op: schemas.OpDDL, Database: db, Schema: schema, Statement: q}, h); err != nil {
			return err
		}
	}
	return t.commit(ctx)
}

var (
	ddlOnDatabase = regexp.MustCompile("(?is)^\\s*(?:CREATE|DROP|ALTER)\\s+(?:DATABASE|SCHEMA)\\s+(?:IF\\s+(?:NOT\\s+)?EXISTS\\s+)?`?([^`\\s;]+)`?")
	ddlQualified  = regexp.MustCompile("(?is)^\\s*(?:CREATE|ALTER|DROP|RENAME|TRUNCATE)\\b[^`.]*?\\b(?:TABLE|VIEW|INDEX\\s+\\S+\\s+ON)\\s+(?:IF\\s+(?:NOT\\s+)?EXISTS\\s+)?`?([^`\\s.;(]+)`?\\.")
)

// ddlDatabase is the database a DDL statement acts on: the one it names, or
// the session's default.
func ddlDatabase(schema, q string) string {
	if m := ddlOnDatabase.FindStringSubmatch(q); m != nil {
		return m[1]
	}
	if m := ddlQualified.FindStringSubmatch(q); m != nil {
		return m[1]
	}
	return schema
}

func (t *tailer) rows(ctx context.Context, h *replication.EventHeader, e *replication.RowsEvent) error {
	if t.gtid == nil {
		return nil // rows of a group we resumed after
	}
	db := string(e.Table.Schema)
	if !mysql.Replicated(db, t.cfg.Primary.Databases) {
		return nil
	}
	tbl, ok := t.tables[e.Table]
	if !ok {
		meta, err := t.columns(ctx, e.Table)
		if err != nil {
			return err
		}
		if tbl, err = newTable(e.Table, meta); err != nil {
			return service.Permanent(err)
		}
		if len(t.tables) > 4096 { // table maps are per transaction; keep few
			clear(t.tables)
		}
		t.tables[e.Table] = tbl
	}
	op, step := schemas.OpInsert, 1
	switch e.Type() {
	case replication.EnumRowsEventTypeUpdate:
		op, step = schemas.OpUpdate, 2
	case replication.EnumRowsEventTypeDelete:
		op = schemas.OpDelete
	}
	for i := 0; i+step <= len(e.Rows); i += step {
		img, err := tbl.row(e.Rows[i])
		if err != nil {
			return service.Permanentf("transaction %s: %w", t.gtid.String(), err)
		}
		r := &schemas.Record{Op: op, Database: tbl.db, Table: tbl.name, Columns: tbl.columns}
		switch op {
		case schemas.OpInsert:
			r.After = img
		case schemas.OpDelete:
			r.Before = img
		case schemas.OpUpdate:
			r.Before = img
			if r.After, err = tbl.row(e.Rows[i+1]); err != nil {
				return service.Permanentf("transaction %s: %w", t.gtid.String(), err)
			}
		}
		r.Key = tbl.key(r.Image())
		if op == schemas.OpUpdate {
			r.Key = tbl.key(r.Before) // the row as the standby has it now
		}
		if err := t.emit(ctx, r, h); err != nil {
			return err
		}
	}
	return nil
}

// columns is a table map's column metadata: from the binlog, or, when it
// carries none, from the primary's schema as it is now, which must at least
// have the same number of columns as the rows.
func (t *tailer) columns(ctx context.Context, tm *replication.TableMapEvent) ([]columnMeta, error) {
	if meta, ok := binlogMeta(tm, t.charsets); ok {
		return meta, nil
	}
	db, name := string(tm.Schema), string(tm.Table)
	if !t.warnedLive {
		t.warnedLive = true
		t.log.Warn("the binlog carries no column names (binlog_row_metadata is not FULL): mapping rows through the primary's current schema", "table", db+"."+name)
	}
	meta, err := t.live.columns(ctx, db, name)
	if err != nil {
		return nil, err
	}
	if len(meta) != int(tm.ColumnCount) {
		return nil, service.Permanentf("binlog rows of %s.%s in transaction %s have %d columns, the table has %d now: its schema changed after they were written, and without binlog_row_metadata=FULL the producer cannot tell which column is which. Nothing of the transaction was published; set binlog_row_metadata=FULL on the primary and re-bootstrap the standby",
			db, name, t.gtid.String(), tm.ColumnCount, len(meta))
	}
	return meta, nil
}

// emit sends the previously held record and holds this one: only the next
// record or the commit tells whether it is the last.
func (t *tailer) emit(ctx context.Context, r *schemas.Record, h *replication.EventHeader) error {
	r.SchemaVersion = schemas.SchemaVersion
	r.Txn = schemas.Txn{GTID: t.gtid.String(), Index: t.index}
	r.Source = schemas.Source{ServerID: h.ServerID, File: t.file, Pos: h.LogPos, CommitTimeMS: int64(h.Timestamp) * 1000}
	t.index++
	prev := t.pending
	t.pending = r
	if prev == nil {
		return nil
	}
	return t.send(ctx, prev)
}

func (t *tailer) commit(ctx context.Context) error {
	if t.gtid == nil {
		return nil
	}
	if err := t.pos.AddSet(t.gtid); err != nil {
		return fmt.Errorf("advance GTID position %s by %s: %w", t.pos, t.gtid.String(), err)
	}
	last := t.pending
	t.gtid, t.pending = nil, nil
	if last == nil {
		return nil // nothing in scope
	}
	last.Txn.Last = true
	last.Source.GTIDSet = t.pos.String()
	return t.send(ctx, last)
}

func (t *tailer) send(ctx context.Context, r *schemas.Record) error {
	return send(ctx, t.out, t.cfg.Kafka.PrimaryTopic, r)
}

// send hands one record for the primary log to the writer.
func send(ctx context.Context, out chan<- kafka.Item, topic string, r *schemas.Record) error {
	it, err := kafka.NewItem(topic, 0, r)
	if err != nil {
		return service.Permanent(err)
	}
	select {
	case out <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
