// Package verify compares the standby with the primary (per table, in
// primary-key chunks: row count and a checksum) and the cache with the standby (every key the rules
// say a standby row should have, and no key that no row explains).
package verify

import (
	"context"
	"database/sql"
	"io"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/progress"
)

// newMeter is the progress of a comparison over tables, shown on out; with
// out nil it shows nothing and asks the server for no estimate.
func newMeter(ctx context.Context, db *sql.DB, out io.Writer, what string, tables []string) (*progress.Meter, error) {
	if out == nil {
		return progress.New(io.Discard, what, "rows", 0), nil
	}
	estimate, err := mysql.EstimateRows(ctx, db, tables)
	if err != nil {
		return nil, err
	}
	return progress.New(out, what, "rows", estimate), nil
}
