package mysql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/lockstep-dr/lockstep/internal/service"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		name      string
		err       error
		permanent bool
		hint      string
	}{
		{"duplicate key", &mysql.MySQLError{Number: 1062, Message: "Duplicate entry '3' for key 'PRIMARY'"}, true, "diverged"},
		{"no such table", &mysql.MySQLError{Number: 1146}, true, ""},
		{"unknown column", &mysql.MySQLError{Number: 1054}, true, ""},
		{"access denied", &mysql.MySQLError{Number: 1045}, true, "password"},
		{"command denied", &mysql.MySQLError{Number: 1142}, true, "grant"},
		{"read only", &mysql.MySQLError{Number: 1290}, true, "READ_ONLY ADMIN"},
		{"deadlock", &mysql.MySQLError{Number: 1213}, false, ""},
		{"lock wait", &mysql.MySQLError{Number: 1205}, false, ""},
		{"server gone", &mysql.MySQLError{Number: 2006}, false, ""},
		{"too many connections", &mysql.MySQLError{Number: 1040}, false, ""},
		{"killed", &mysql.MySQLError{Number: 1927}, false, ""},
		{"wrapped", fmt.Errorf("apply row: %w", &mysql.MySQLError{Number: 1062}), true, "diverged"},
		{"binlog client: purged", &gomysql.MyError{Code: 1236}, true, ""},
		{"binlog client: shutdown", &gomysql.MyError{Code: 1053}, false, ""},
		{"network", io.ErrUnexpectedEOF, false, ""},
		{"timeout", context.DeadlineExceeded, false, ""},
		{"already permanent", service.Permanent(errors.New("x")), true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Classify(c.err)
			if service.IsPermanent(got) != c.permanent {
				t.Fatalf("Classify(%v) permanent = %v, want %v", c.err, service.IsPermanent(got), c.permanent)
			}
			if !errors.Is(got, c.err) {
				t.Fatalf("Classify(%v) = %v, which does not wrap the error", c.err, got)
			}
			if c.hint != "" && !strings.Contains(got.Error(), c.hint) {
				t.Fatalf("Classify(%v) = %q, want a hint with %q", c.err, got, c.hint)
			}
		})
	}
	if Classify(nil) != nil {
		t.Fatal("Classify(nil) is not nil")
	}
}
