package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/lockstep-dr/lockstep/internal/metrics"
	"github.com/lockstep-dr/lockstep/internal/mysql"
)

// retentionEvery is how often the producer compares its position with the
// binlogs the primary keeps.
const retentionEvery = 10 * time.Second

// retention is how far the binlog the producer reads is from being purged
// by the primary: what an outage of the producer (or of Kafka) may last
// before the standby has to be bootstrapped again.
type retention struct {
	File    string // the binlog the producer reads
	Older   int    // binlogs the primary keeps that are older
	Current bool   // the one the primary writes: it is never purged
	Found   bool   // the primary still lists it
	// Expiry is binlog_expire_logs_seconds (0: none); Age that of the
	// producer's position.
	Expiry, Age time.Duration
	// Limit is MariaDB's max_binlog_total_size (0: none); Kept the bytes
	// of the producer's binlog and the newer ones.
	Limit, Kept int64
}

// secondsLeft is how long until expiry may purge the producer's binlog:
// the expiry less the age of its position; +Inf when nothing expires it.
func (r retention) secondsLeft() float64 {
	if r.Expiry == 0 || r.Current {
		return math.Inf(1)
	}
	return (r.Expiry - r.Age).Seconds()
}

// bytesLeft is how much more binlog the primary may write before its size
// limit purges the producer's binlog; +Inf without a limit.
func (r retention) bytesLeft() float64 {
	if r.Limit == 0 || r.Current {
		return math.Inf(1)
	}
	return float64(r.Limit - r.Kept)
}

// risk is the warning to give, "" when there is none: the primary purges
// the producer's binlog within a fifth of its retention.
func (r retention) risk() string {
	switch {
	case !r.Found:
		return fmt.Sprintf("the binlog the producer reads, %s, is no longer on the primary: a restart of the producer cannot resume; re-bootstrap the standby", r.File)
	case r.secondsLeft() < r.Expiry.Seconds()/5:
		return fmt.Sprintf("the primary may purge binlog %s, which the producer still reads, in %s (binlog_expire_logs_seconds %s, the producer's position is %s old): if the producer falls further behind, the standby must be bootstrapped again; find why it is behind (status, its log) or raise binlog_expire_logs_seconds",
			r.File, time.Duration(r.secondsLeft()*float64(time.Second)).Round(time.Second), r.Expiry, r.Age.Round(time.Second))
	case r.bytesLeft() < float64(r.Limit)/5:
		return fmt.Sprintf("the primary purges binlog %s, which the producer still reads, after %.0f more bytes of binlog (max_binlog_total_size %d, %d kept from it on): if the producer falls further behind, the standby must be bootstrapped again; find why it is behind (status, its log) or raise max_binlog_total_size",
			r.File, r.bytesLeft(), r.Limit, r.Kept)
	}
	return ""
}

// readRetention asks the primary which binlogs it keeps and how long.
func readRetention(ctx context.Context, db *sql.DB, file string, age time.Duration) (retention, error) {
	r := retention{File: file, Age: age}
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return r, fmt.Errorf("list the primary's binlogs: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return r, err
	}
	var names []string
	var sizes []int64
	for rows.Next() {
		var name string
		var size int64
		dest := []any{&name, &size}
		for range len(cols) - 2 { // MySQL adds Encrypted
			dest = append(dest, new(sql.RawBytes))
		}
		if err := rows.Scan(dest...); err != nil {
			return r, err
		}
		names, sizes = append(names, name), append(sizes, size)
	}
	if err := rows.Err(); err != nil {
		return r, err
	}
	for i, name := range names {
		if name == file {
			r.Found, r.Older, r.Current = true, i, i == len(names)-1
			for _, s := range sizes[i:] {
				r.Kept += s
			}
		}
	}
	var expiry int64
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.binlog_expire_logs_seconds").Scan(&expiry); err != nil {
		return r, fmt.Errorf("read binlog_expire_logs_seconds: %w", err)
	}
	r.Expiry = time.Duration(expiry) * time.Second
	var name, limit string
	err = db.QueryRowContext(ctx, "SHOW GLOBAL VARIABLES LIKE 'max_binlog_total_size'").Scan(&name, &limit)
	if err != nil && err != sql.ErrNoRows {
		return r, fmt.Errorf("read max_binlog_total_size: %w", err)
	}
	if limit != "" {
		if r.Limit, err = strconv.ParseInt(limit, 10, 64); err != nil {
			return r, fmt.Errorf("max_binlog_total_size %q: %w", limit, err)
		}
	}
	return r, nil
}

// watchRetention compares, every retentionEvery until ctx ends, the binlog
// the tailer reads with the binlogs the primary keeps: it exports how far
// it is from being purged and warns, once each time, when that is close.
func watchRetention(ctx context.Context, db *sql.DB, t *tailer, log *slog.Logger) {
	warned := ""
	for {
		wait := 200 * time.Millisecond // until the stream has started
		if file, atMS := t.reading(); file != "" {
			wait = retentionEvery
			var age time.Duration // unknown before the first transaction
			if atMS > 0 {
				age = time.Since(time.UnixMilli(atMS))
			}
			r, err := readRetention(ctx, db, file, age)
			switch {
			case err != nil && ctx.Err() == nil:
				log.Warn("binlog retention not checked", "err", mysql.Classify(err))
			case err == nil:
				metrics.BinlogOlder.Set(float64(r.Older))
				metrics.BinlogSecondsLeft.Set(r.secondsLeft())
				metrics.BinlogBytesLeft.Set(r.bytesLeft())
				risk := r.risk()
				if risk != "" && warned == "" {
					log.Warn(risk, "binlog", r.File)
				}
				warned = risk
				metrics.BinlogRisk.Set(0)
				if risk != "" {
					metrics.BinlogRisk.Set(1)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
