// Package mysql opens lockstep's connections to MySQL/MariaDB and holds the
// helpers that every SQL statement we build goes through.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/lockstep-dr/lockstep/internal/config"
)

// SystemDatabases are never replicated.
var SystemDatabases = []string{"mysql", "information_schema", "performance_schema", "sys", "lockstep"}

// Open connects to one database server. Every session runs in UTC (so
// TIMESTAMP text means the same on both sides), with found-rows semantics
// (an UPDATE that matched a row counts it even if nothing changed), and with
// the SQL mode a replica uses: what the primary accepted is applied as is.
// key names the config section, for errors.
func Open(ctx context.Context, key string, c config.Database) (*sql.DB, error) {
	mc := mysql.NewConfig()
	mc.User = c.User
	mc.Passwd = c.Password
	mc.Net = "tcp"
	mc.Addr = c.Address
	mc.ClientFoundRows = true
	mc.InterpolateParams = true
	mc.MultiStatements = true
	mc.MaxAllowedPacket = 0 // ask the server
	mc.Timeout = 10 * time.Second
	mc.Params = map[string]string{
		"time_zone":          "'+00:00'",
		"sql_mode":           "'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
		"foreign_key_checks": "0",
	}
	if err := mc.Apply(mysql.Charset("utf8mb4", "utf8mb4_bin")); err != nil {
		return nil, err
	}
	tlsCfg, err := c.TLS.Build(key+".tls", c.Address)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		mc.TLS = tlsCfg
	}
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("%s database %s: %w", key, c.Address, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(16)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, Classify(fmt.Errorf("connect to %s database %s as %s (%s.address, %s.user): %w", key, c.Address, c.User, key, key, err))
	}
	return db, nil
}

// RowQuerier is a connection, a pool or a transaction, for one-row reads.
type RowQuerier interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

// Quote quotes an identifier.
func Quote(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// QuoteTable quotes database.table.
func QuoteTable(db, table string) string { return Quote(db) + "." + Quote(table) }

// Replicated reports whether a database is in scope: listed, or when the
// list is empty, any database but the system ones.
func Replicated(db string, only []string) bool {
	if db == "" {
		return false
	}
	if len(only) > 0 {
		for _, d := range only {
			if d == db {
				return true
			}
		}
		return false
	}
	for _, d := range SystemDatabases {
		if strings.EqualFold(d, db) {
			return false
		}
	}
	return true
}

// ReadOnly reports whether a server refuses writes from accounts without
// READ_ONLY ADMIN (read_only=ON), as a standby should: only lockstep writes
// there, and any other write diverges it.
func ReadOnly(ctx context.Context, q RowQuerier) (bool, error) {
	var ro bool
	if err := q.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&ro); err != nil {
		return false, fmt.Errorf("read the server's read_only: %w", err)
	}
	return ro, nil
}

// WritableStandby is what to say of a standby that takes anyone's writes.
const WritableStandby = "the standby takes writes from any account that may write (read_only is OFF): a write there by anything but lockstep diverges it from the primary; run it with read_only=ON and grant lockstep's applier READ_ONLY ADMIN (MySQL: CONNECTION_ADMIN)"

// ApplierLock is the name of the standby lock an active storage-applier
// holds (applier.name).
func ApplierLock(applier string) string {
	n := "lockstep.applier." + applier
	return n[:min(len(n), 64)] // the server's limit on lock names
}

// HoldApplierLock takes, for a command that changes storage-applier
// applier's checkpoint (rewind, reverse, reseed), the lock the active
// storage-applier holds, so that none starts meanwhile; closing the
// connection returned releases it. While a storage-applier runs, the error
// says so.
func HoldApplierLock(ctx context.Context, standby *sql.DB, applier string) (*sql.Conn, error) {
	conn, err := standby.Conn(ctx)
	if err != nil {
		return nil, Classify(fmt.Errorf("connect to the standby: %w", err))
	}
	name := ApplierLock(applier)
	got, err := TryLock(ctx, conn, name)
	if err == nil && !got {
		err = fmt.Errorf("a storage-applier %q is running on this standby (it holds lock %s): stop every storage-applier of it first", applier, name)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// TryLock takes the named lock on conn if it is free, without waiting;
// the lock lasts as long as conn.
func TryLock(ctx context.Context, conn *sql.Conn, name string) (bool, error) {
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", name).Scan(&got); err != nil {
		return false, Classify(fmt.Errorf("take lock %s on the standby: %w", name, err))
	}
	return got.Int64 == 1, nil
}

// EstimateRows sums the server's row estimates (information_schema) of
// tables given as "db.table": a total for progress, not a count.
func EstimateRows(ctx context.Context, q RowQuerier, tables []string) (int64, error) {
	var total int64
	for _, name := range tables {
		db, table, _ := strings.Cut(name, ".")
		var n sql.NullInt64
		err := q.QueryRowContext(ctx, "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", db, table).Scan(&n)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("estimate the rows of %s: %w", name, err)
		}
		total += n.Int64
	}
	return total, nil
}
