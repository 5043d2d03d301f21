package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"

	"github.com/lockstep-dr/lockstep/internal/mysql"
)

// Events on the standby. An event the primary's DDL creates enabled would
// run on the standby too, and its changes arrive already as rows of the
// primary log: the standby keeps it as a native replica does, disabled
// there (SLAVESIDE_DISABLED; MySQL says REPLICA_SIDE_DISABLED), and
// failover enables it.

type queryExecer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// eventsIn lists the events of the databases given with one of the
// statuses.
func eventsIn(ctx context.Context, q queryExecer, statuses []any, dbs []string) ([][2]string, error) {
	rows, err := q.QueryContext(ctx, "SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS WHERE STATUS IN (?"+strings.Repeat(", ?", len(statuses)-1)+")", statuses...)
	if err != nil {
		return nil, fmt.Errorf("list the standby's events: %w", err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var e [2]string
		if err := rows.Scan(&e[0], &e[1]); err != nil {
			return nil, err
		}
		if mysql.Replicated(e[0], dbs) {
			out = append(out, e)
		}
	}
	return out, rows.Err()
}

// quietEvents disables on the standby the enabled events of a database,
// after DDL that may have created or enabled one.
func quietEvents(ctx context.Context, q queryExecer, db string) error {
	evs, err := eventsIn(ctx, q, []any{"ENABLED"}, []string{db})
	if err != nil {
		return err
	}
	for _, e := range evs {
		if _, err := q.ExecContext(ctx, "ALTER EVENT "+mysql.QuoteTable(e[0], e[1])+" DISABLE ON SLAVE"); err != nil {
			return fmt.Errorf("disable event %s.%s on the standby: %w", e[0], e[1], err)
		}
	}
	return nil
}

// wakeEvents enables, at failover, the events the standby held disabled
// because the primary ran them.
func wakeEvents(ctx context.Context, q queryExecer, dbs []string, out io.Writer) error {
	evs, err := eventsIn(ctx, q, []any{"SLAVESIDE_DISABLED", "REPLICA_SIDE_DISABLED"}, dbs)
	if err != nil {
		return err
	}
	for _, e := range evs {
		if _, err := q.ExecContext(ctx, "ALTER EVENT "+mysql.QuoteTable(e[0], e[1])+" ENABLE"); err != nil {
			return fmt.Errorf("enable event %s.%s on the standby (the user needs EVENT on its database): %w", e[0], e[1], err)
		}
		fmt.Fprintf(out, "  event %s.%s enabled (it ran on the primary)\n", e[0], e[1])
	}
	return nil
}
