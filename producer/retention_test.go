package main

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/testenv"
)

func TestRetentionRiskIsAFifthOfTheRetention(t *testing.T) {
	hour := time.Hour
	for _, c := range []struct {
		name string
		r    retention
		want string // in the warning; "" for none
	}{
		{"caught up", retention{File: "b.2", Found: true, Current: true, Expiry: hour, Age: 2 * hour}, ""},
		{"behind, young", retention{File: "b.1", Found: true, Expiry: 10 * hour, Age: hour}, ""},
		{"behind, old", retention{File: "b.1", Found: true, Expiry: 10 * hour, Age: 9 * hour}, "may purge binlog b.1, which the producer still reads, in 1h0m0s"},
		{"no expiry", retention{File: "b.1", Found: true, Age: 100 * hour}, ""},
		{"size, room", retention{File: "b.1", Found: true, Limit: 1000, Kept: 500}, ""},
		{"size, close", retention{File: "b.1", Found: true, Limit: 1000, Kept: 900}, "after 100 more bytes of binlog"},
		{"purged", retention{File: "b.1"}, "b.1, is no longer on the primary"},
	} {
		got := c.r.risk()
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: risk() = %q, want %q", c.name, got, c.want)
		}
	}
	if s := (retention{Found: true, Current: true, Expiry: time.Hour}).secondsLeft(); !math.IsInf(s, 1) {
		t.Errorf("the binlog the primary writes: %v seconds left, want +Inf", s)
	}
}

// What the primary says of its binlogs, read as the producer reads it.
func TestRetentionIsReadFromThePrimary(t *testing.T) {
	e := testenv.New(t)
	ctx := context.Background()
	testenv.Exec(t, e.Primary, "FLUSH BINARY LOGS") // at least two
	var files []string
	rows, err := e.Primary.Query("SHOW BINARY LOGS")
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	for rows.Next() {
		dest := make([]any, len(cols))
		var name string
		dest[0] = &name
		for i := 1; i < len(cols); i++ {
			dest[i] = new(any)
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		files = append(files, name)
	}
	rows.Close()
	var expiry int64
	if err := e.Primary.QueryRow("SELECT @@GLOBAL.binlog_expire_logs_seconds").Scan(&expiry); err != nil {
		t.Fatal(err)
	}
	oldest, err := readRetention(ctx, e.Primary, files[0], time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !oldest.Found || oldest.Older != 0 || oldest.Current || oldest.Kept <= 0 || oldest.Expiry != time.Duration(expiry)*time.Second {
		t.Errorf("the oldest binlog %s: %+v, want found, 0 older, not current, bytes kept, expiry %ds", files[0], oldest, expiry)
	}
	newest, err := readRetention(ctx, e.Primary, files[len(files)-1], time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !newest.Found || newest.Older != len(files)-1 || !newest.Current || newest.risk() != "" {
		t.Errorf("the newest binlog %s of %d: %+v, want found, current, no risk", files[len(files)-1], len(files), newest)
	}
	gone, err := readRetention(ctx, e.Primary, "binlog.999999", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if gone.Found || !strings.Contains(gone.risk(), "binlog.999999, is no longer on the primary") {
		t.Errorf("a binlog the primary does not keep: %+v, risk %q", gone, gone.risk())
	}
}
