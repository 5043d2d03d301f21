package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
)

type setting struct{ name, want, why string }

// requiredSettings are the primary's settings lockstep cannot work without,
// with the value each must have.
var requiredSettings = []setting{
	{"log_bin", "1", "the producer reads the binary log"},
	{"binlog_format", "ROW", "only row events carry the changed rows"},
	{"binlog_row_image", "FULL", "updates and deletes must carry every column of the before image"},
}

// mysqlSettings are those a MySQL primary needs besides (MariaDB always
// has GTIDs and never logs partial values).
var mysqlSettings = []setting{
	{"gtid_mode", "ON", "the producer resumes and the standby skips duplicates by GTID"},
	{"binlog_row_value_options", "", "with PARTIAL_JSON an update of a JSON column logs a diff against a value the binlog does not carry, not the value"},
}

// preflight refuses to start against a primary configured so that lockstep
// would publish wrong or partial data, and says which setting to change. It
// warns when the binlog carries no column names: lockstep then works, with
// a risk the warning explains. It says which flavour the primary is.
func preflight(ctx context.Context, db *sql.DB, address string, log *slog.Logger) (mysql.Flavor, error) {
	flavor, err := mysql.ServerFlavor(ctx, db)
	if err != nil {
		return "", fmt.Errorf("primary %s: %w", address, err)
	}
	settings := requiredSettings
	if flavor == mysql.MySQL {
		settings = append(slices.Clip(settings), mysqlSettings...)
	}
	got := make(map[string]string)
	for _, s := range settings {
		var v string
		if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL."+s.name).Scan(&v); err != nil {
			return "", fmt.Errorf("read @@GLOBAL.%s on the primary %s: %w", s.name, address, err)
		}
		got[s.name] = v
	}
	if err := checkSettings(address, settings, got); err != nil {
		return "", err
	}
	var meta string
	err = db.QueryRowContext(ctx, "SELECT @@GLOBAL.binlog_row_metadata").Scan(&meta)
	switch {
	case mysql.ErrorNumber(err) == 1193: // unknown variable: MySQL 5.7, MariaDB before 10.5
		meta = "not available on this server"
	case err != nil:
		return "", fmt.Errorf("read @@GLOBAL.binlog_row_metadata on the primary %s: %w", address, err)
	}
	if !strings.EqualFold(meta, "FULL") {
		log.Warn("binlog_row_metadata is "+meta+", not FULL: the binlog carries no column names, so the producer maps each row through the primary's schema as it is when it reads the row. "+
			"If the producer lags behind a schema change, rows written before it are read after it: a change of the column count stops the producer, but one that keeps the count (a rename, a drop and an add) maps values to the wrong columns without notice. "+
			"Set binlog_row_metadata=FULL in the server's config file, or SET GLOBAL binlog_row_metadata='FULL', to remove this risk", "primary", address)
	}
	return flavor, nil
}

func checkSettings(address string, settings []setting, got map[string]string) error {
	var problems []string
	for _, s := range settings {
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
