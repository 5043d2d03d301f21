package service

import (
	"errors"
	"testing"
)

func TestRetryOverridesPermanent(t *testing.T) {
	cause := errors.New("duplicate key")
	p := Permanent(cause)
	r := Retry(p, "applying again carefully")
	if !IsPermanent(p) || IsPermanent(r) || !errors.Is(r, cause) {
		t.Fatalf("permanent %v, retried permanent %v, cause kept %v", IsPermanent(p), IsPermanent(r), errors.Is(r, cause))
	}
	if r.Error() != "duplicate key; applying again carefully" {
		t.Fatalf("%q", r.Error())
	}
}
