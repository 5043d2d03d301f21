package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/internal/sqltext"
	"github.com/lockstep-dr/lockstep/schemas"
)

// tailer reads the primary's binlog from a GTID position and turns every
// committed transaction in scope into records, sent in order on out. A
// transaction's records carry their index and, on the last one, the last-row
// flag and the GTID position after the transaction, where a restart resumes.
// What it carries and what it refuses: shapes.go and handle.
type tailer struct {
	cfg   config.Config
	log   *slog.Logger
	out   chan<- []*schemas.Record // to encode (see encode)
	batch []*schemas.Record        // sent, not yet handed to encode (flush)

	charsets charsets
	// live gives column metadata when the binlog does not carry it.
	live       *liveSchema
	warnedLive bool
	flavor     mysql.Flavor
	pos        mysql.GTIDSet
	// published is what the primary log already holds when the stream
	// starts before it (XA transactions were pending): those transactions
	// are read again for their prepared XA rows only.
	published *mysql.GTIDSet
	file      string
	checksum  bool
	// eventMS is the time of the last event read (binlog seconds, in ms).
	eventMS int64
	// readFile and readMS are, for watchRetention, the binlog read and the
	// time of the last transaction read.
	readFile atomic.Pointer[string]
	readMS   atomic.Int64
	// beyond: the position moved past the last record sent, by groups with
	// nothing in scope; lastOut is when a record last went out. A position
	// record then moves the primary log's position on, so that the stages'
	// RPO does not count transactions lockstep does not carry.
	beyond  bool
	lastOut time.Time
	// tables are what the table maps describe, by table id; kept across
	// transactions while a table's map stays the same, forgotten at DDL.
	tables map[uint64]*mappedTable
	xa     xaBook

	// the open event group
	gtid  string // "" between groups
	flags byte   // MariaDB's GTID event flags; on MySQL, what its first statement says (mysqlGroup)
	// first: MySQL names a group's kind only by its first statement.
	first   bool
	replay  bool   // published already
	xid     string // an XA group's id; a PREPARE group's rows wait for its outcome
	index   int
	sent    int             // records of the group sent already
	pending *schemas.Record // held back until we know whether it is the last
	// held are records that may still be undone: after a savepoint, or of
	// an XA PREPARE group.
	held       []*schemas.Record
	savepoints []savepoint
}

// mappedTable is a table map and, once a rows event needed it, the table it
// describes.
type mappedTable struct {
	body  string // the table map event's body: the same for the same table
	event *replication.TableMapEvent
	tbl   *table
}

// savepoint marks where the records stood when SAVEPOINT name ran.
type savepoint struct {
	name        string
	held, index int
}

func newTailer(cfg config.Config, log *slog.Logger, flavor mysql.Flavor, cs charsets, live *liveSchema, from schemas.Source, out chan<- []*schemas.Record) (*tailer, error) {
	start := from.GTIDSet
	if from.Resume != "" {
		start = from.Resume
	}
	set, err := mysql.ParseGTIDSet(start)
	if err == nil && !set.IsEmpty() && set.Flavor() != flavor {
		err = fmt.Errorf("it is a %s GTID set and the primary is %s: the primary log was written from another primary", set.Flavor(), flavor)
	}
	if err != nil {
		return nil, service.Permanentf("resume position %q: %w", start, err)
	}
	t := &tailer{cfg: cfg, log: log, out: out, flavor: flavor, charsets: cs, live: live, pos: set, tables: make(map[uint64]*mappedTable)}
	if from.Resume != "" {
		pub, err := mysql.ParseGTIDSet(from.GTIDSet)
		if err != nil {
			return nil, service.Permanentf("published position: %w", err)
		}
		t.published = &pub
		log.Info("XA transactions were pending: reading the binlog again from before the oldest prepare", "from_gtid", from.Resume, "published_through", from.GTIDSet)
	}
	return t, nil
}

func (t *tailer) run(ctx context.Context) error {
	syncer, stream, err := openBinlog(t.cfg, t.flavor, t.pos, t.log)
	if err != nil {
		return err
	}
	defer syncer.Close()
	t.log.Info("tailing binlog", "primary", t.cfg.Primary.Address, "flavor", t.flavor, "from_gtid", t.pos.String())
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

// openBinlog starts the primary's binlog stream after the GTID set pos, as
// the producer reads it.
func openBinlog(cfg config.Config, flavor mysql.Flavor, pos mysql.GTIDSet, log *slog.Logger) (*replication.BinlogSyncer, *replication.BinlogStreamer, error) {
	host, portStr, err := net.SplitHostPort(cfg.Primary.Address)
	if err != nil {
		return nil, nil, service.Permanentf("primary.address = %s: %w", cfg.Primary.Address, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, nil, service.Permanentf("primary.address = %s: bad port: %w", cfg.Primary.Address, err)
	}
	tlsCfg, err := cfg.Primary.TLS.Build("primary.tls", cfg.Primary.Address)
	if err != nil {
		return nil, nil, service.Permanent(err)
	}
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID:                cfg.Producer.ServerID,
		Flavor:                  flavor.Syncer(),
		Host:                    host,
		Port:                    uint16(port),
		User:                    cfg.Primary.User,
		Password:                cfg.Primary.Password,
		TLSConfig:               tlsCfg,
		TimestampStringLocation: time.UTC,
		RenderJSONAsMySQLText:   true, // MySQL's JSON: see mysqlJSON
		// An idle binlog sends one a second: the tailer publishes its
		// position on it (sendPosition), and a read that waits ten times
		// as long finds a dead link (stallDialer).
		HeartbeatPeriod: time.Second,
		Dialer:          stallDialer(stallTimeout),
		// A broken connection is the supervisor's to handle: it resumes from
		// the primary log, the one source of truth for the position.
		DisableRetrySync: true,
		Logger:           log.With("component", "binlog"),
	})
	stream, err := syncer.StartSyncGTID(pos.Stream(flavor))
	var denied *gomysql.MyError
	if errors.As(err, &denied) && (denied.Code == gomysql.ER_ACCESS_DENIED_ERROR || denied.Code == gomysql.ER_SPECIFIC_ACCESS_DENIED_ERROR) {
		// The password worked for the preflight: the privilege is missing.
		privileges := "REPLICATION SLAVE, BINLOG MONITOR"
		if flavor == mysql.MySQL {
			privileges = "REPLICATION SLAVE, REPLICATION CLIENT"
		}
		syncer.Close()
		return nil, nil, service.Permanentf("start binlog stream from GTID %s: %w: the primary user %s may not read the binlog; GRANT %s ON *.* TO it, then restart the producer",
			pos, err, cfg.Primary.User, privileges)
	}
	if err != nil {
		syncer.Close()
		return nil, nil, mysql.Classify(fmt.Errorf("start binlog stream from GTID %s: %w", pos, err))
	}
	return syncer, stream, nil
}

// classifyStreamError turns the server's refusals into errors an operator
// can act on. 1236 is ER_MASTER_FATAL_ERROR_READING_BINLOG: the binlog we
// need is gone, and only a new bootstrap can fix that.
func classifyStreamError(err error, pos string) error {
	var me *gomysql.MyError
	if errors.As(err, &me) && me.Code == 1236 {
		return service.Permanentf("the primary cannot send its binlog from GTID %s (%s): the binlog the producer needs was probably purged; re-bootstrap the standby and start the producer on an empty primary log topic", pos, me.Message)
	}
	return mysql.Classify(fmt.Errorf("read binlog after GTID %s: %w", pos, err))
}

// handle is the allow-list of binlog events: each known type is carried,
// passed over because it changes nothing by itself, or refused.
func (t *tailer) handle(ctx context.Context, ev *replication.BinlogEvent) error {
	h := ev.Header
	if h.Timestamp != 0 { // 0 on heartbeats and the server's fake rotations
		t.eventMS = int64(h.Timestamp) * 1000
	}
	switch e := ev.Event.(type) {
	case *replication.FormatDescriptionEvent:
		t.checksum = e.ChecksumAlgorithm == replication.BINLOG_CHECKSUM_ALG_CRC32
	case *replication.RotateEvent:
		file := string(e.NextLogName)
		t.file = file
		t.readFile.Store(&file)
	case *replication.MariadbGTIDEvent:
		return t.beginMariaDB(e, eventBody(ev, t.checksum))
	case *replication.GTIDEvent:
		if h.EventType == replication.ANONYMOUS_GTID_EVENT {
			return t.refuse(h, "", "a transaction without a GTID (gtid_mode is not ON)",
				"lockstep resumes and deduplicates by GTID: set gtid_mode=ON and enforce_gtid_consistency=ON on the primary")
		}
		return t.beginMySQL(h, e)
	case *replication.GtidTaggedLogEvent:
		return t.beginMySQL(h, &e.GTIDEvent)
	case *replication.TransactionPayloadEvent:
		// binlog_transaction_compression: the group's events, compressed
		// in one; carried as if they were written one by one.
		for _, inner := range e.Events {
			if err := t.handle(ctx, inner); err != nil {
				return err
			}
		}
	case *replication.TableMapEvent:
		// It describes the rows events after it; each transaction maps
		// its tables again, mostly as before.
		body := eventBody(ev, t.checksum)
		if m := t.tables[e.TableID]; m != nil && m.body == string(body) {
			m.event = e
			return nil
		}
		if len(t.tables) > 4096 {
			clear(t.tables)
		}
		t.tables[e.TableID] = &mappedTable{body: string(body), event: e}
	case *replication.HeartbeatEvent:
		// The binlog is idle.
		if t.beyond && t.gtid == "" {
			return t.sendPosition(ctx)
		}
	case *replication.MariadbAnnotateRowsEvent, *replication.MariadbGTIDListEvent,
		*replication.MariadbBinlogCheckPointEvent,
		*replication.PreviousGTIDsEvent, *replication.RowsQueryEvent:
		// Markers and comments.
	case *replication.IntVarEvent, *replication.BeginLoadQueryEvent:
		// Context of the statement that follows (INSERT_ID, LOAD DATA's
		// file), which is judged on its own.
	case *replication.RowsEvent:
		return t.rows(ctx, h, e)
	case *replication.XIDEvent:
		return t.commit(ctx)
	case *replication.QueryEvent:
		return t.query(ctx, h, string(e.Schema), string(e.Query))
	case *replication.ExecuteLoadQueryEvent:
		schema, q, err := loadQuery(eventBody(ev, t.checksum))
		if err != nil {
			return t.refuse(h, "", "a LOAD DATA statement that cannot be read ("+err.Error()+")", "set binlog_format=ROW")
		}
		return t.statement(h, schema, q)
	case *replication.GenericEvent:
		switch h.EventType {
		case replication.XA_PREPARE_LOG_EVENT:
			return t.prepare(ctx, eventBody(ev, t.checksum))
		case replication.RAND_EVENT, replication.USER_VAR_EVENT:
			return nil // context of the statement that follows, like INTVAR
		case replication.STOP_EVENT, replication.IGNORABLE_EVENT:
			return nil
		}
		return t.refuse(h, "", fmt.Sprintf("binlog event %s (type %d)", h.EventType, byte(h.EventType)), "lockstep does not know this event; report it with the server's version")
	default:
		return t.refuse(h, "", fmt.Sprintf("binlog event %s (type %d, %T)", h.EventType, byte(h.EventType), e), "lockstep does not know this event on a "+string(t.flavor)+" primary; report it with the server's version")
	}
	return nil
}

// refuse stops the producer for good before it publishes anything of the
// open transaction: what it found, where, and what to change. The binlog
// keeps the transaction, so the stream cannot go past it; the standby is
// repaired by a new bootstrap.
func (t *tailer) refuse(h *replication.EventHeader, table, found, change string) error {
	gtid := t.gtid
	if gtid == "" {
		gtid = "(none)"
	}
	if table != "" {
		found += " for " + table
	}
	return service.Permanentf("refused %s in GTID %s (binlog %s position %d): lockstep publishes only what it can reproduce exactly, and nothing of this transaction or after it was published. "+
		"To go on: %s; then bootstrap the standby again from a snapshot (README, Bootstrap a standby), since the binlog keeps this transaction and the stream cannot pass it",
		found, gtid, t.file, h.LogPos, change)
}

// beginMariaDB opens an event group; an XA group's GTID event names its XA
// id.
func (t *tailer) beginMariaDB(e *replication.MariadbGTIDEvent, body []byte) error {
	xid := ""
	if e.Flags&(flPreparedXA|flCompletedXA) != 0 {
		var err error
		if xid, err = xaID(body, e.Flags); err != nil {
			return service.Permanentf("XA event group %s (binlog %s): %w", e.GTID.String(), t.file, err)
		}
	}
	return t.begin(e.GTID.String(), e.Flags, xid)
}

// beginMySQL opens a MySQL event group; its first statement tells what
// kind it is (mysqlGroup).
func (t *tailer) beginMySQL(h *replication.EventHeader, e *replication.GTIDEvent) error {
	set, err := e.GTIDNext()
	if err != nil {
		return t.refuse(h, "", fmt.Sprintf("a GTID event that cannot be read (%v)", err), "report it with the server's version")
	}
	if err := t.begin(set.String(), 0, ""); err != nil {
		return err
	}
	t.first = true
	return nil
}

func (t *tailer) begin(gtid string, flags byte, xid string) error {
	if t.gtid != "" {
		return service.Permanentf("binlog GTID %s began before event group %s ended (binlog %s): a shape of event group lockstep does not know; report it with the server's version",
			gtid, t.gtid, t.file)
	}
	t.gtid, t.flags, t.index, t.sent, t.pending, t.xid, t.first = gtid, flags, 0, 0, nil, xid, false
	if t.published != nil {
		var err error
		if t.replay, err = t.published.Covers(gtid); err != nil {
			return service.Permanent(err)
		}
	}
	return nil
}

// mysqlGroup gives a MySQL event group the kind a MariaDB GTID event's
// flags give it, from its first statement: BEGIN opens a transaction, XA
// START an XA PREPARE group, XA COMMIT/ROLLBACK is a group of its own, and
// anything else is DDL, alone in its group.
func (t *tailer) mysqlGroup(kind stmtKind, xid string) {
	switch kind {
	case stmtBegin:
	case stmtXAStart:
		t.flags, t.xid = flPreparedXA, xid
	case stmtXACommit, stmtXARollback:
		t.flags, t.xid = flCompletedXA, xid
	default:
		t.flags = replication.BINLOG_MARIADB_FL_STANDALONE
	}
}

// query handles a statement: a standalone group's DDL, or one inside a
// transaction.
func (t *tailer) query(ctx context.Context, h *replication.EventHeader, schema, q string) error {
	if t.gtid == "" {
		return nil // before our first GTID: the tail of a group we resumed after
	}
	q = strings.TrimSpace(q)
	kind, arg := classifyStatement(q)
	if t.first {
		t.first = false
		t.mysqlGroup(kind, arg)
	}
	if t.flags&flCompletedXA != 0 {
		// XA COMMIT or XA ROLLBACK, a group of its own (flagged standalone)
		switch kind {
		case stmtXACommit:
			return t.xaCommit(ctx, h)
		case stmtXARollback:
			t.xa.take(t.xid)
			t.xid = ""
			return t.commit(ctx)
		}
		return t.refuse(h, "", fmt.Sprintf("statement %q in an XA COMMIT/ROLLBACK group", sqltext.Abbreviate(q, 200)), "report it with the server's version")
	}
	if t.flags&replication.BINLOG_MARIADB_FL_STANDALONE != 0 {
		if err := t.ddl(ctx, h, schema, q); err != nil {
			return err
		}
		return t.commit(ctx)
	}
	switch kind {
	case stmtBegin, stmtXAStart, stmtXAEnd:
		return nil
	case stmtCommit:
		return t.commit(ctx)
	case stmtSavepoint:
		t.savepoints = append(t.savepoints, savepoint{name: arg, held: len(t.held), index: t.index})
		return nil
	case stmtRollbackTo:
		return t.rollbackTo(h, arg)
	case stmtRollback:
		return t.rollback(ctx, h)
	case stmtXACommit, stmtXARollback:
		return t.refuse(h, "", fmt.Sprintf("statement %q in a group not flagged as XA", sqltext.Abbreviate(q, 200)), "report it with the server's version")
	}
	// CREATE TABLE ... SELECT: the CREATE, then its rows, one group; MySQL
	// marks the CREATE with START TRANSACTION (which only a replica takes).
	ddl, ctas := strings.CutSuffix(q, " START TRANSACTION")
	if t.flags&replication.BINLOG_MARIADB_FL_DDL != 0 || (ctas && t.flavor == mysql.MySQL) {
		if t.index != 0 {
			return t.refuse(h, "", "a DDL statement after row changes in one event group ("+q+")", "report it with the server's version")
		}
		return t.ddl(ctx, h, schema, ddl)
	}
	return t.statement(h, schema, q)
}

// ddl publishes a schema statement of the replicated databases as a
// record: every object kind (tables, views, triggers, routines, events,
// sequences, indexes, databases). One that touches replicated and other
// databases at once, or that cannot be read and may touch a replicated
// one, is refused; statements on accounts are carried as primary.accounts
// says, those on the server not.
func (t *tailer) ddl(ctx context.Context, h *replication.EventHeader, schema, q string) error {
	t.live.forget()
	clear(t.tables)
	d, err := sqltext.ParseDDL(q)
	if err != nil {
		for _, db := range statementDatabases(schema, q) {
			if mysql.Replicated(db, t.cfg.Primary.Databases) {
				return t.refuse(h, db, fmt.Sprintf("a schema statement it cannot read (%v)", err),
					"report it with the server's version; if the statement leaves the replicated databases alone, run it with the session's default database outside them")
			}
		}
		t.log.Debug("statement outside the replicated databases, ignored", "gtid", t.gtid, "schema", schema, "query", sqltext.Abbreviate(sqltext.HashPasswords(q), 200))
		return nil
	}
	if d.Server() {
		return t.account(ctx, h, schema, q, d)
	}
	in, out := partition(d.Databases(schema), func(db string) bool { return mysql.Replicated(db, t.cfg.Primary.Databases) })
	switch {
	case len(in) == 0:
		return nil
	case len(out) > 0:
		return t.refuse(h, in[0], fmt.Sprintf("%s %s that spans replicated (%s) and other (%s) databases (%q): the standby holds only the replicated ones",
			d.Verb, d.Kind, strings.Join(in, ", "), strings.Join(out, ", "), sqltext.Abbreviate(q, 200)),
			"keep such statements inside the replicated databases, or add the others to primary.databases")
	}
	t.log.Info("ddl", "gtid", t.gtid, "database", in[0], "statement", q)
	return t.emit(ctx, &schemas.Record{Op: schemas.OpDDL, Database: in[0], Schema: schema, Statement: q}, h)
}

// statement judges a statement inside a transaction that is neither
// control nor DDL: statement-based DML, whose effect only executing it
// again would show. On a replicated database it is refused.
func (t *tailer) statement(h *replication.EventHeader, schema, q string) error {
	if t.gtid == "" {
		return nil
	}
	for _, db := range statementDatabases(schema, q) {
		if mysql.Replicated(db, t.cfg.Primary.Databases) {
			return t.refuse(h, db, fmt.Sprintf("statement-based events (binlog_format=STATEMENT or MIXED in the writing session: %q)", sqltext.Abbreviate(q, 200)),
				"lockstep needs row events: set binlog_format=ROW globally and revoke from applications the privilege to change it in their sessions (SUPER, BINLOG ADMIN)")
		}
	}
	t.log.Debug("statement on a database that is not replicated, ignored", "gtid", t.gtid, "schema", schema, "query", sqltext.Abbreviate(q, 200))
	return nil
}

// rollbackTo undoes the records after a savepoint: the server logs ROLLBACK
// TO when the transaction also changed a non-transactional table, and
// keeps the undone row events in the group.
func (t *tailer) rollbackTo(h *replication.EventHeader, name string) error {
	for i := len(t.savepoints) - 1; i >= 0; i-- {
		if sp := t.savepoints[i]; strings.EqualFold(sp.name, name) {
			clear(t.held[sp.held:])
			t.held, t.index = t.held[:sp.held], sp.index
			t.savepoints = t.savepoints[:i+1]
			return nil
		}
	}
	return t.refuse(h, "", "ROLLBACK TO SAVEPOINT "+name+" with no SAVEPOINT "+name+" in the transaction", "report it with the server's version")
}

// rollback ends a group whose transactional changes were undone.
func (t *tailer) rollback(ctx context.Context, h *replication.EventHeader) error {
	if t.sent > 0 {
		return t.refuse(h, "", "a transaction ending in ROLLBACK after its rows were published", "report it with the server's version")
	}
	t.pending = nil
	clear(t.held)
	t.held = t.held[:0]
	return t.commit(ctx) // nothing left to send
}

// prepare ends an XA PREPARE group: its rows wait for the outcome. MySQL
// ends an XA COMMIT ... ONE PHASE the same way, the event's first byte
// (one_phase) set: then the rows are committed.
func (t *tailer) prepare(ctx context.Context, body []byte) error {
	if t.gtid == "" {
		return nil
	}
	if len(body) > 0 && body[0] != 0 {
		t.xid = "" // its rows are this group's, sent at commit
		return t.commit(ctx)
	}
	from := t.pos.String()
	if t.xid == "" || t.flags&flPreparedXA == 0 {
		return service.Permanentf("XA PREPARE in GTID %s (binlog %s) in a group not flagged as XA: a shape of event group lockstep does not know; report it with the server's version", t.gtid, t.file)
	}
	t.xa.add(&preparedXA{xid: t.xid, gtid: t.gtid, from: from, rows: t.held})
	t.held = nil
	xid, gtid, n := t.xa.pending()
	t.log.Info("XA transaction prepared: its rows wait for XA COMMIT", "xid", t.xid, "gtid", t.gtid, "pending", n, "oldest_xid", xid, "oldest_gtid", gtid)
	return t.commit(ctx) // nothing to send: advances the position
}

// xaCommit publishes a prepared XA transaction's rows as the transaction of
// its commit.
func (t *tailer) xaCommit(ctx context.Context, h *replication.EventHeader) error {
	xid := t.xid
	rows, ok := t.xa.take(xid)
	if !ok && !t.replay {
		return t.refuse(h, "", "XA COMMIT "+xid+" whose XA PREPARE the producer did not read (it precedes the position the stream started at)",
			"the rows it committed are unknown; nothing else is needed before the bootstrap")
	}
	t.xid = "" // its rows are this group's, sent at commit
	for _, r := range rows {
		if err := t.emit(ctx, r, h); err != nil {
			return err
		}
	}
	return t.commit(ctx)
}

func (t *tailer) rows(ctx context.Context, h *replication.EventHeader, e *replication.RowsEvent) error {
	if t.gtid == "" {
		return nil // rows of a group we resumed after
	}
	db := string(e.Table.Schema)
	if !mysql.Replicated(db, t.cfg.Primary.Databases) {
		return nil
	}
	if err := t.fullImages(h, e); err != nil {
		return err
	}
	m := t.tables[e.Table.TableID]
	if m == nil || m.event != e.Table {
		m = &mappedTable{event: e.Table} // not kept: its map went by unseen
	}
	tbl := m.tbl
	if tbl == nil {
		// The history rows of a system-versioned table come with the
		// primary's row_start/row_end, which the standby's own versioning
		// would write again, differently.
		versioned, err := t.live.isVersioned(ctx, db, string(e.Table.Table))
		if err != nil {
			return err
		}
		if versioned {
			return t.refuse(h, db+"."+string(e.Table.Table), "rows of a system-versioned table (WITH SYSTEM VERSIONING)",
				"lockstep cannot reproduce its history rows exactly: leave the table's database out of primary.databases, or ALTER TABLE … DROP SYSTEM VERSIONING")
		}
		meta, err := t.columns(ctx, e.Table)
		if err != nil {
			return err
		}
		if tbl, err = newTable(e.Table, meta); err != nil {
			return service.Permanent(err)
		}
		m.tbl = tbl
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
			return t.rowError(h, tbl, err)
		}
		r := &schemas.Record{Op: op, Database: tbl.db, Table: tbl.name, Columns: tbl.columns,
			NoForeignKeyChecks: e.Flags&rowsNoForeignKeyChecks != 0, NoUniqueChecks: e.Flags&rowsRelaxedUniqueChecks != 0,
			NoCheckConstraints: e.Flags&rowsNoCheckConstraints != 0}
		switch op {
		case schemas.OpInsert:
			r.After = img
		case schemas.OpDelete:
			r.Before = img
		case schemas.OpUpdate:
			r.Before = img
			if r.After, err = tbl.row(e.Rows[i+1]); err != nil {
				return t.rowError(h, tbl, err)
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

// rowError stops the producer at a row it cannot read; a partial JSON
// update is a shape it refuses.
func (t *tailer) rowError(h *replication.EventHeader, tbl *table, err error) error {
	if errors.Is(err, errPartialJSON) {
		return t.refuse(h, tbl.db+"."+tbl.name, err.Error()+" (binlog_row_value_options=PARTIAL_JSON in the writing session: the update logs a change to the value, not the value)",
			"set binlog_row_value_options='' globally and revoke from applications the privilege to change it in their sessions")
	}
	return service.Permanentf("transaction %s: %w", t.gtid, err)
}

// fullImages refuses a rows event whose images leave out columns
// (binlog_row_image MINIMAL or NOBLOB in the writing session): an update
// would be applied as a guess at the columns it did not log.
func (t *tailer) fullImages(h *replication.EventHeader, e *replication.RowsEvent) error {
	n := int(e.ColumnCount)
	missing := missingColumns(e.ColumnBitmap1, n)
	if e.Type() == replication.EnumRowsEventTypeUpdate {
		missing = append(missing, missingColumns(e.ColumnBitmap2, n)...)
	}
	if len(missing) == 0 {
		return nil
	}
	names := e.Table.ColumnNameString()
	var cols []string
	for _, i := range missing {
		if i < len(names) {
			cols = append(cols, names[i])
		} else {
			cols = append(cols, fmt.Sprintf("#%d", i+1))
		}
	}
	slices.Sort(cols)
	cols = slices.Compact(cols)
	return t.refuse(h, string(e.Table.Schema)+"."+string(e.Table.Table),
		fmt.Sprintf("a partial row image (binlog_row_image MINIMAL or NOBLOB in the writing session; the %s event leaves out %s)", h.EventType, strings.Join(cols, ", ")),
		"lockstep needs every column of both images: set binlog_row_image=FULL globally and revoke from applications the privilege to change it in their sessions")
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
			db, name, t.gtid, tm.ColumnCount, len(meta))
	}
	return meta, nil
}

// emit adds a record to the open transaction. Records that may still be
// undone (after a savepoint, of an XA PREPARE) are held until the group
// ends; the others go out with one held back, since only the next record
// or the commit tells whether it is the last.
func (t *tailer) emit(ctx context.Context, r *schemas.Record, h *replication.EventHeader) error {
	r.SchemaVersion = schemas.SchemaVersion
	r.Txn = schemas.Txn{GTID: t.gtid, Index: t.index}
	r.Source = schemas.Source{ServerID: h.ServerID, File: t.file, Pos: h.LogPos, CommitTimeMS: int64(h.Timestamp) * 1000}
	t.index++
	if t.replay && t.xid == "" {
		return nil // in the primary log already
	}
	if t.xid != "" || len(t.savepoints) > 0 {
		t.held = append(t.held, r)
		return nil
	}
	prev := t.pending
	t.pending = r
	if prev == nil {
		return nil
	}
	t.sent++
	return t.send(ctx, prev)
}

// commit ends the open event group: the position moves past it and what
// it holds goes out, its last record flagged and carrying the positions a
// restart needs.
func (t *tailer) commit(ctx context.Context) error {
	if t.gtid == "" {
		return nil
	}
	t.readMS.Store(t.eventMS)
	if err := t.pos.Extend(t.gtid); err != nil {
		return service.Permanentf("advance GTID position %s by %s: %w", t.pos, t.gtid, err)
	}
	var out []*schemas.Record
	if t.pending != nil {
		out = append(out, t.pending)
	}
	out = append(out, t.held...)
	replay := t.replay
	t.gtid, t.pending, t.held, t.savepoints, t.xid, t.replay = "", nil, nil, nil, "", false
	if replay {
		return nil // published already
	}
	if len(out) == 0 { // nothing in scope
		if t.beyond = true; time.Since(t.lastOut) >= positionEvery {
			return t.sendPosition(ctx)
		}
		return nil
	}
	t.beyond, t.lastOut = false, time.Now()
	last := out[len(out)-1]
	last.Txn.Last = true
	last.Source.GTIDSet = t.pos.String()
	last.Source.Resume = t.xa.resume()
	for _, r := range out {
		if err := t.send(ctx, r); err != nil {
			return err
		}
	}
	return t.flush(ctx)
}

// reading is the binlog the tailer reads and the time of the last
// transaction it read there; "" before the stream starts.
func (t *tailer) reading() (string, int64) {
	f := t.readFile.Load()
	if f == nil {
		return "", 0
	}
	return *f, t.readMS.Load()
}

// positionEvery is how often at most the tailer publishes its position
// while the transactions it reads have nothing in scope.
const positionEvery = time.Second

// sendPosition publishes the position the tailer has read through, with
// the time of its last event.
func (t *tailer) sendPosition(ctx context.Context) error {
	r := positionRecord(t.pos.String())
	r.Source.File, r.Source.CommitTimeMS, r.Source.Resume = t.file, t.eventMS, t.xa.resume()
	t.beyond, t.lastOut = false, time.Now()
	if err := t.send(ctx, r); err != nil {
		return err
	}
	return t.flush(ctx)
}

// sendBatch is how many records the tailer hands to encode at once at most.
// A transaction's records go together, at its commit: handed one at a time,
// each woke the encoder, which at a steady rate cost the producer more than
// encoding them. A bigger transaction goes in parts of this many, so that
// the records queued for encode stay bounded (recordQueue batches).
const sendBatch = 64

// recordQueue is how many batches the tailer may queue for encode.
const recordQueue = 16

func (t *tailer) send(ctx context.Context, r *schemas.Record) error {
	t.batch = append(t.batch, r)
	if len(t.batch) < sendBatch {
		return nil
	}
	return t.flush(ctx)
}

// flush hands what was sent to encode.
func (t *tailer) flush(ctx context.Context) error {
	if len(t.batch) == 0 {
		return nil
	}
	select {
	case t.out <- t.batch:
		t.batch = nil // encode's now
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// encode turns the tailer's records into items for the writer, in order,
// on a goroutine of its own: under a backlog, encoding was a third of the
// tailer's work, which bounds the producer.
func encode(ctx context.Context, topic string, in <-chan []*schemas.Record, out chan<- kafka.Item) error {
	for {
		select {
		case rs := <-in:
			for _, r := range rs {
				if err := send(ctx, out, topic, r); err != nil {
					return err
				}
			}
		case <-ctx.Done():
			return nil
		}
	}
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
