package main

import (
	"context"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/lockstep-dr/lockstep/internal/service"
)

func TestClassifyStatement(t *testing.T) {
	for _, c := range []struct {
		q    string
		kind stmtKind
		arg  string
	}{
		{"BEGIN", stmtBegin, ""},
		{"START TRANSACTION", stmtBegin, ""},
		{"COMMIT", stmtCommit, ""},
		{"ROLLBACK", stmtRollback, ""},
		{"SAVEPOINT `s1`", stmtSavepoint, "s1"},
		{"SAVEPOINT `a``b`", stmtSavepoint, "a`b"},
		{"ROLLBACK TO `s1`", stmtRollbackTo, "s1"},
		{"ROLLBACK WORK TO SAVEPOINT s2", stmtRollbackTo, "s2"},
		{"XA START X'7831',X'',1", stmtXAStart, "X'7831',X'',1"},
		{"XA END X'7831',X'',1", stmtXAEnd, "X'7831',X'',1"},
		{"XA COMMIT X'7831',X'',1", stmtXACommit, "X'7831',X'',1"},
		{"XA COMMIT X'7A41',X'62',7 ONE PHASE", stmtXACommit, "X'7a41',X'62',7"}, // MySQL's hex as MariaDB's GTID event gives it
		{"XA ROLLBACK X'7831',X'',1", stmtXARollback, "X'7831',X'',1"},
		{"INSERT INTO t VALUES (1)", stmtOther, ""},
		{"CREATE TABLE `c` (id int)", stmtOther, ""},
		{"ROLLBACKS", stmtOther, ""},
	} {
		kind, arg := classifyStatement(c.q)
		if kind != c.kind || arg != c.arg {
			t.Errorf("classifyStatement(%q) = %v %q, want %v %q", c.q, kind, arg, c.kind, c.arg)
		}
	}
}

func TestStatementDatabases(t *testing.T) {
	for _, c := range []struct {
		schema, q string
		want      []string
	}{
		{"shop", "INSERT INTO users VALUES (1)", []string{"shop"}},
		{"", "INSERT INTO shop.users VALUES (1)", []string{"shop"}},
		{"", "UPDATE `my db`.`t` SET a = 1", []string{"my db"}},
		{"other", "INSERT INTO a.x SELECT * FROM `b`.y JOIN c . z", []string{"other", "a", "b", "c"}},
		{"", "DELETE FROM t WHERE v = 1.5", []string{}},
	} {
		if got := statementDatabases(c.schema, c.q); !reflect.DeepEqual(got, c.want) {
			t.Errorf("statementDatabases(%q, %q) = %q, want %q", c.schema, c.q, got, c.want)
		}
	}
}

func TestMissingColumns(t *testing.T) {
	for _, c := range []struct {
		bitmap []byte
		n      int
		want   []int
	}{
		{[]byte{0x07}, 3, nil},
		{[]byte{0xff, 0x01}, 9, nil},
		{[]byte{0x01}, 3, []int{1, 2}},  // MINIMAL: the key alone
		{[]byte{0xf7}, 3, nil},          // unused high bits do not count
		{[]byte{0xff}, 10, []int{8, 9}}, // a short bitmap misses columns
		{[]byte{0x05}, 3, []int{1}},     // NOBLOB: the blob left out
	} {
		got := missingColumns(c.bitmap, c.n)
		if len(got) != len(c.want) || (len(got) > 0 && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("missingColumns(%08b, %d) = %v, want %v", c.bitmap, c.n, got, c.want)
		}
	}
}

func TestXAID(t *testing.T) {
	body := make([]byte, 13, 40)
	binary.LittleEndian.PutUint64(body, 7)
	body = binary.LittleEndian.AppendUint32(body, 1) // format id
	body = append(body, 2, 1, 'x', '1', 'b')
	got, err := xaID(body, flPreparedXA)
	if err != nil || got != "X'7831',X'62',1" {
		t.Fatalf("xaID = %q, %v; want X'7831',X'62',1", got, err)
	}
	withCommitID := append(append(append([]byte{}, body[:13]...), make([]byte, 8)...), body[13:]...)
	if got, err := xaID(withCommitID, flCompletedXA|replication.BINLOG_MARIADB_FL_GROUP_COMMIT_ID); err != nil || got != "X'7831',X'62',1" {
		t.Fatalf("xaID after a commit id = %q, %v", got, err)
	}
	if _, err := xaID(body[:20], flPreparedXA); err == nil {
		t.Fatal("xaID of a truncated event: no error")
	}
}

func TestLoadQuery(t *testing.T) {
	body := make([]byte, 26)
	body[8] = 4                                 // schema length
	binary.LittleEndian.PutUint16(body[11:], 2) // status variables
	body = append(body, 0, 0)
	body = append(body, "shop\x00LOAD DATA INFILE 'f' INTO TABLE t"...)
	schema, q, err := loadQuery(body)
	if err != nil || schema != "shop" || q != "LOAD DATA INFILE 'f' INTO TABLE t" {
		t.Fatalf("loadQuery = %q, %q, %v", schema, q, err)
	}
	if _, _, err := loadQuery(body[:20]); err == nil {
		t.Fatal("loadQuery of a truncated event: no error")
	}
}

func TestXABook(t *testing.T) {
	var b xaBook
	if b.resume() != "" {
		t.Fatal("an empty book has a resume position")
	}
	b.add(&preparedXA{xid: "a", from: "0-1-5"})
	b.add(&preparedXA{xid: "b", from: "0-1-7"})
	if got := b.resume(); got != "0-1-5" {
		t.Fatalf("resume = %q, want the oldest prepare's 0-1-5", got)
	}
	if _, ok := b.take("a"); !ok {
		t.Fatal("take a: not found")
	}
	if got := b.resume(); got != "0-1-7" {
		t.Fatalf("resume after a = %q, want 0-1-7", got)
	}
	if _, ok := b.take("a"); ok {
		t.Fatal("take a twice: found")
	}
}

// Events outside the allow-list stop the producer for good, naming the
// event and the GTID.
func TestUnknownEventsAreRefused(t *testing.T) {
	for _, typ := range []replication.EventType{replication.INCIDENT_EVENT, replication.LOAD_EVENT, replication.SLAVE_EVENT} {
		tl := &tailer{file: "binlog.000007"}
		if err := tl.beginMariaDB(&replication.MariadbGTIDEvent{GTID: gomysql.MariadbGTID{DomainID: 0, ServerID: 1, SequenceNumber: 9}}, nil); err != nil {
			t.Fatal(err)
		}
		err := tl.handle(context.Background(), &replication.BinlogEvent{Header: &replication.EventHeader{EventType: typ, LogPos: 400}, Event: &replication.GenericEvent{}})
		if !service.IsPermanent(err) || !strings.Contains(err.Error(), typ.String()) || !strings.Contains(err.Error(), "GTID 0-1-9 (binlog binlog.000007 position 400)") {
			t.Errorf("event %s: %v, want a permanent refusal naming it and its place", typ, err)
		}
	}
}
