package kafka

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/lockstep-dr/lockstep/internal/service/classifytest"
)

func TestClassify(t *testing.T) {
	classifytest.Run(t, Classify, []classifytest.Case{
		{Err: kerr.TopicAuthorizationFailed, Permanent: true, Hint: "grant"},
		{Err: fmt.Errorf("produce: %w", kerr.TopicAuthorizationFailed), Permanent: true, Hint: "grant"},
		{Err: kerr.SaslAuthenticationFailed, Permanent: true, Hint: "kafka.sasl.user"},
		{Err: kerr.InvalidTransactionTimeout, Permanent: true, Hint: "kafka.transaction_timeout"},
		{Err: kerr.ProducerFenced},
		{Err: kerr.NotLeaderForPartition},
		{Err: kerr.CoordinatorLoadInProgress},
		{Err: kerr.RequestTimedOut},
		{Err: kerr.UnknownTopicOrPartition},
		{Err: io.EOF},
		{Err: context.DeadlineExceeded},
	})
}
