package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/lockstep-dr/lockstep/internal/service"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err       error
		permanent bool
		hint      string
	}{
		{kerr.TopicAuthorizationFailed, true, "grant"},
		{fmt.Errorf("produce: %w", kerr.TopicAuthorizationFailed), true, "grant"},
		{kerr.ProducerFenced, false, ""},
		{kerr.SaslAuthenticationFailed, true, "kafka.sasl.user"},
		{kerr.InvalidTransactionTimeout, true, "kafka.transaction_timeout"},
		{kerr.NotLeaderForPartition, false, ""},
		{kerr.CoordinatorLoadInProgress, false, ""},
		{kerr.RequestTimedOut, false, ""},
		{kerr.UnknownTopicOrPartition, false, ""},
		{io.EOF, false, ""},
		{context.DeadlineExceeded, false, ""},
	} {
		got := Classify(c.err)
		if service.IsPermanent(got) != c.permanent {
			t.Errorf("Classify(%v) permanent = %v, want %v", c.err, service.IsPermanent(got), c.permanent)
		}
		if !errors.Is(got, c.err) {
			t.Errorf("Classify(%v) = %v does not wrap the error", c.err, got)
		}
		if c.hint != "" && !strings.Contains(got.Error(), c.hint) {
			t.Errorf("Classify(%v) = %q, want a hint with %q", c.err, got, c.hint)
		}
	}
}
