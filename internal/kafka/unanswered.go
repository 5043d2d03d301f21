package kafka

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrUnanswered is in the reason Unanswered gives.
var ErrUnanswered = errors.New("the link to it is down or half-open")

// Unanswered is a kgo hook: a read or write that ran into the connection's
// deadline, which the client sets from the request's own timeout (it then
// closes the connection and tries again on a new one), calls On with the
// reason.
type Unanswered struct{ On func(error) }

func (u Unanswered) hit(meta kgo.BrokerMetadata, key int16, what string, took time.Duration, err error) {
	// A context's end also shows as a deadline on the connection, but the
	// client reports it as the context's error, which this is not.
	if errors.Is(err, os.ErrDeadlineExceeded) {
		u.On(fmt.Errorf("broker %s:%d took %s without %s a %s request, past the client's deadline: %w",
			meta.Host, meta.Port, took.Round(100*time.Millisecond), what, kmsg.NameForKey(key), ErrUnanswered))
	}
}

func (u Unanswered) OnBrokerRead(meta kgo.BrokerMetadata, key int16, _ int, _, timeToRead time.Duration, err error) {
	u.hit(meta, key, "answering", timeToRead, err)
}

func (u Unanswered) OnBrokerWrite(meta kgo.BrokerMetadata, key int16, _ int, _, timeToWrite time.Duration, err error) {
	u.hit(meta, key, "taking", timeToWrite, err)
}

// WarnUnanswered is an Unanswered hook for a consumer, which needs nothing
// more than the client's own retries: it says why no record comes.
func WarnUnanswered(log *slog.Logger) kgo.Opt {
	return kgo.WithHooks(Unanswered{On: func(err error) {
		log.Warn("no answer from Kafka in time; the client reconnects and tries again", "err", err)
	}})
}
