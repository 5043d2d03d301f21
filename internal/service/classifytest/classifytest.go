// Package classifytest checks an error classifier (mysql.Classify,
// kafka.Classify, the cache-applier's Redis one) against a table of cases.
package classifytest

import (
	"errors"
	"strings"
	"testing"

	"github.com/lockstep-dr/lockstep/internal/service"
)

// Case is one error and what its classifier must make of it.
type Case struct {
	Err       error
	Permanent bool
	// Hint, if set, is text the permanent error must carry: what to do.
	Hint string
}

// Run checks classify on every case: permanent or not as the case says,
// the original error still wrapped, the hint present; nil stays nil.
func Run(t *testing.T, classify func(error) error, cases []Case) {
	t.Helper()
	for _, c := range cases {
		got := classify(c.Err)
		if service.IsPermanent(got) != c.Permanent {
			t.Errorf("classify(%v) permanent = %v, want %v", c.Err, service.IsPermanent(got), c.Permanent)
		}
		if !errors.Is(got, c.Err) {
			t.Errorf("classify(%v) = %v, which does not wrap the error", c.Err, got)
		}
		if c.Hint != "" && (got == nil || !strings.Contains(got.Error(), c.Hint)) {
			t.Errorf("classify(%v) = %v, want a hint with %q", c.Err, got, c.Hint)
		}
	}
	if classify(nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}
