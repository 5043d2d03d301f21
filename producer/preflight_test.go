package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

func TestPreflightSaysWhichSettingToChange(t *testing.T) {
	err := checkSettings("db:3306", requiredSettings, map[string]string{"log_bin": "1", "binlog_format": "MIXED", "binlog_row_image": "MINIMAL", "binlog_row_metadata": "FULL"})
	if err == nil || !service.IsPermanent(err) {
		t.Fatalf("want a permanent error, got %v", err)
	}
	for _, want := range []string{"primary db:3306", "binlog_format is MIXED, want ROW", "SET GLOBAL binlog_format='ROW'", "binlog_row_image is MINIMAL, want FULL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "log_bin is") {
		t.Errorf("a correct setting was reported: %v", err)
	}
}

func TestPreflightPassesOnTheTestPrimary(t *testing.T) {
	e := testenv.New(t)
	var out bytes.Buffer
	flavor, err := preflight(context.Background(), e.Primary, e.Cfg.Primary.Address, slog.New(slog.NewTextHandler(&out, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if flavor != e.Flavor {
		t.Errorf("primary's flavour %q, want %q", flavor, e.Flavor)
	}
	if out.Len() > 0 {
		t.Errorf("warnings on a primary with binlog_row_metadata=FULL: %s", out.String())
	}
}
