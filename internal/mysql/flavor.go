package mysql

import (
	"context"
	"fmt"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// Flavor is the kind of server: MariaDB or MySQL. They share the protocol
// and most SQL but not their GTIDs, their binlog's GTID events or the
// variables that say where the binlog is.
type Flavor string

const (
	MariaDB Flavor = "mariadb"
	MySQL   Flavor = "mysql"
)

// ServerFlavor asks a server what it is, by its version string.
func ServerFlavor(ctx context.Context, q RowQuerier) (Flavor, error) {
	var v string
	if err := q.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return "", fmt.Errorf("read the server's version: %w", err)
	}
	if strings.Contains(strings.ToLower(v), "mariadb") {
		return MariaDB, nil
	}
	return MySQL, nil
}

// BinlogGTIDs reads the GTIDs the server's binlog holds: every transaction
// it committed (gtid_binlog_pos on MariaDB, gtid_executed on MySQL).
func (f Flavor) BinlogGTIDs(ctx context.Context, q RowQuerier) (string, error) {
	v := "gtid_binlog_pos"
	if f == MySQL {
		v = "gtid_executed"
	}
	var pos string
	if err := q.QueryRowContext(ctx, "SELECT @@GLOBAL."+v).Scan(&pos); err != nil {
		return "", fmt.Errorf("read the server's GTID position (@@GLOBAL.%s): %w", v, err)
	}
	return strings.ReplaceAll(pos, "\n", ""), nil
}

// Syncer is the flavour's name in the binlog client.
func (f Flavor) Syncer() string {
	if f == MySQL {
		return gomysql.MySQLFlavor
	}
	return gomysql.MariaDBFlavor
}

// Unapplied reads the server's GTID position and counts the transactions
// in it that the set at does not hold: how far a copy at at is behind it.
func Unapplied(ctx context.Context, q RowQuerier, at string) (head string, behind int64, err error) {
	f, err := ServerFlavor(ctx, q)
	if err != nil {
		return "", -1, err
	}
	if head, err = f.BinlogGTIDs(ctx, q); err != nil {
		return "", -1, err
	}
	h, err := ParseGTIDSet(head)
	if err != nil {
		return head, -1, err
	}
	a, err := ParseGTIDSet(at)
	if err != nil {
		return head, -1, err
	}
	behind, err = a.Behind(h)
	return head, behind, err
}
