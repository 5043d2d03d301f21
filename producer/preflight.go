package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/lockstep-dr/lockstep/internal/service"
)

// requiredSettings are the primary's settings lockstep cannot work without,
// with the value each must have.
var requiredSettings = []struct{ name, want, why string }{
	{"log_bin", "1", "the producer reads the binary log"},
	{"binlog_format", "ROW", "only row events carry the changed rows"},
	{"binlog_row_image", "FULL", "updates and deletes must carry every column of the before image"},
	{"binlog_row_metadata", "FULL", "column names must come from the binlog, so a lagging producer never maps old rows through a newer schema"},
}

// preflight refuses to start against a primary configured so that lockstep
// would publish wrong or partial data, and says which setting to change.
func preflight(ctx context.Context, db *sql.DB, address string) error {
	got := make(map[string]string)
	for _, s := range requiredSettings {
		var v string
		if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL."+s.name).Scan(&v); err != nil {
			return fmt.Errorf("read @@GLOBAL.%s on the primary %s: %w", s.name, address, err)
		}
		got[s.name] = v
	}
	return checkSettings(address, got)
}

func checkSettings(address string, got map[string]string) error {
	var problems []string
	for _, s := range requiredSettings {
		if v := got[s.name]; !strings.EqualFold(v, s.want) {
			problems = append(problems, fmt.Sprintf("%s is %s, want %s (%s): set %s=%s in the server's config file, or SET GLOBAL %s='%s', then restart the producer",
				s.name, v, s.want, s.why, s.name, s.want, s.name, s.want))
		}
	}
	if len(problems) > 0 {
		return service.Permanentf("primary %s is not ready for lockstep:\n  %s", address, strings.Join(problems, "\n  "))
	}
	return nil
}
