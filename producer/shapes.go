package main

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-mysql-org/go-mysql/replication"
)

// The binlog shapes the producer carries, and the rule for the rest.
//
// Inside an event group (GTID ... COMMIT/XID) the producer carries row
// events with full images, one DDL statement (standalone, or the CREATE of
// a CREATE TABLE ... SELECT ahead of its rows), and the control statements
// below. Everything else that can change data in a replicated database is
// refused with a permanent error: statement-based DML (whose effect only
// re-executing it would show), partial row images, savepoints rolled back
// with nothing to roll back from, unknown events. Statements on databases
// lockstep does not replicate are ignored.

// MariaDB GTID event flags that go-mysql does not name.
const (
	flPreparedXA  = 64  // the group ends in XA PREPARE
	flCompletedXA = 128 // the group is an XA COMMIT or XA ROLLBACK
)

// Rows event flags (MySQL and MariaDB): the writing session's settings,
// which the standby applies the row with.
const (
	rowsNoForeignKeyChecks  = 1 << 1 // foreign_key_checks=0
	rowsRelaxedUniqueChecks = 1 << 2 // unique_checks=0
	rowsNoCheckConstraints  = 1 << 7 // MariaDB: check_constraint_checks=0
)

// stmtKind is what a statement inside an event group does.
type stmtKind int

const (
	stmtOther      stmtKind = iota // DML or DDL: judged by the group
	stmtBegin                      // BEGIN, START TRANSACTION
	stmtCommit                     // COMMIT
	stmtRollback                   // ROLLBACK (a group with non-transactional changes)
	stmtSavepoint                  // SAVEPOINT name
	stmtRollbackTo                 // ROLLBACK TO [SAVEPOINT] name
	stmtXAStart                    // XA START/BEGIN xid: opens a prepared group
	stmtXAEnd                      // XA END xid
	stmtXACommit                   // XA COMMIT xid
	stmtXARollback                 // XA ROLLBACK xid
)

var (
	savepointStmt  = regexp.MustCompile("(?is)^SAVEPOINT\\s+(.+?)\\s*$")
	rollbackToStmt = regexp.MustCompile("(?is)^ROLLBACK\\s+(?:WORK\\s+)?TO\\s+(?:SAVEPOINT\\s+)?(.+?)\\s*$")
	xaStmt         = regexp.MustCompile("(?is)^XA\\s+(START|BEGIN|END|COMMIT|ROLLBACK)\\s+(X'[0-9a-f]*',X'[0-9a-f]*',[0-9]+)?")
)

// classifyStatement sorts a statement read inside an event group; arg is
// the savepoint name, or the XA id as the server writes it in the binlog
// (X'gtrid',X'bqual',format; MariaDB's GTID event carries it too, which
// xaID renders the same way).
func classifyStatement(q string) (kind stmtKind, arg string) {
	q = strings.TrimSpace(q)
	switch {
	case strings.EqualFold(q, "BEGIN"), strings.EqualFold(q, "START TRANSACTION"):
		return stmtBegin, ""
	case strings.EqualFold(q, "COMMIT"):
		return stmtCommit, ""
	case strings.EqualFold(q, "ROLLBACK"):
		return stmtRollback, ""
	}
	if m := savepointStmt.FindStringSubmatch(q); m != nil {
		return stmtSavepoint, unquote(m[1])
	}
	if m := rollbackToStmt.FindStringSubmatch(q); m != nil {
		return stmtRollbackTo, unquote(m[1])
	}
	if m := xaStmt.FindStringSubmatch(q); m != nil {
		xid := strings.ToLower(m[2])
		xid = strings.ReplaceAll(xid, "x'", "X'")
		switch strings.ToUpper(m[1]) {
		case "START", "BEGIN":
			return stmtXAStart, xid
		case "END":
			return stmtXAEnd, xid
		case "COMMIT":
			return stmtXACommit, xid
		default:
			return stmtXARollback, xid
		}
	}
	return stmtOther, ""
}

func unquote(name string) string {
	if len(name) >= 2 && name[0] == '`' && name[len(name)-1] == '`' {
		return strings.ReplaceAll(name[1:len(name)-1], "``", "`")
	}
	return name
}

// qualifiedName finds db.table references: a backquoted or plain
// identifier followed by a dot and another identifier.
var qualifiedName = regexp.MustCompile("(?:`((?:[^`]|``)+)`|\\b([A-Za-z0-9_$]+))\\s*\\.\\s*(?:`|[A-Za-z_$])")

// statementDatabases lists the databases a statement may write: the
// session's default one and every database it names before a dot. It errs
// on the side of too many (a value such as 'a.b' counts too): a statement
// is ignored only when none of them is replicated.
func statementDatabases(schema, q string) []string {
	dbs := []string{}
	if schema != "" {
		dbs = append(dbs, schema)
	}
	for _, m := range qualifiedName.FindAllStringSubmatch(q, -1) {
		if m[1] != "" {
			dbs = append(dbs, strings.ReplaceAll(m[1], "``", "`"))
		} else if m[2] != "" {
			dbs = append(dbs, m[2])
		}
	}
	return dbs
}

// missingColumns lists the columns (0-based) a rows event's column bitmap
// leaves out of its image: with binlog_row_image MINIMAL or NOBLOB an image
// holds only some columns, and applying it as a whole row would be a guess.
func missingColumns(bitmap []byte, columns int) []int {
	var out []int
	for i := 0; i < columns; i++ {
		if i/8 >= len(bitmap) || bitmap[i/8]&(1<<(i%8)) == 0 {
			out = append(out, i)
		}
	}
	return out
}

// loadQuery reads the default database and the LOAD DATA statement of an
// EXECUTE_LOAD_QUERY event, which go-mysql does not decode: the query
// event's fixed part (13 bytes: thread, time, schema length, error code,
// status length), the load's (13 bytes: file id, start, end, duplicates),
// the status variables, the schema and a NUL, then the statement. body
// excludes the common header and the checksum.
func loadQuery(body []byte) (schema, query string, err error) {
	const fixed = 26
	if len(body) < fixed {
		return "", "", fmt.Errorf("EXECUTE_LOAD_QUERY event of %d bytes", len(body))
	}
	schemaLen := int(body[8])
	statusLen := int(binary.LittleEndian.Uint16(body[11:13]))
	at := fixed + statusLen
	if len(body) < at+schemaLen+1 {
		return "", "", fmt.Errorf("EXECUTE_LOAD_QUERY event of %d bytes, its schema ends at %d", len(body), at+schemaLen+1)
	}
	return string(body[at : at+schemaLen]), string(body[at+schemaLen+1:]), nil
}

// xaID reads the XA transaction id a MariaDB GTID event carries when it
// opens an XA PREPARE group or an XA COMMIT/ROLLBACK group (go-mysql does
// not decode it): after the sequence number, domain and flags, an optional
// commit id, then the format id, the two lengths and the id's bytes. It is
// rendered as the server writes XA statements: X'gtrid',X'bqual',format.
func xaID(body []byte, flags byte) (string, error) {
	at := 13
	if flags&replication.BINLOG_MARIADB_FL_GROUP_COMMIT_ID != 0 {
		at += 8
	}
	if len(body) < at+6 {
		return "", fmt.Errorf("GTID event of %d bytes has no XA id", len(body))
	}
	format := binary.LittleEndian.Uint32(body[at:])
	gtrid, bqual := int(body[at+4]), int(body[at+5])
	at += 6
	if len(body) < at+gtrid+bqual {
		return "", fmt.Errorf("GTID event of %d bytes, its XA id ends at %d", len(body), at+gtrid+bqual)
	}
	return fmt.Sprintf("X'%x',X'%x',%d", body[at:at+gtrid], body[at+gtrid:at+gtrid+bqual], format), nil
}

// eventBody is an event's data without the common header and checksum.
func eventBody(ev *replication.BinlogEvent, checksum bool) []byte {
	b := ev.RawData[replication.EventHeaderSize:]
	if checksum && len(b) >= replication.BinlogChecksumLength {
		b = b[:len(b)-replication.BinlogChecksumLength]
	}
	return b
}
