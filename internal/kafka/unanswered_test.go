package kafka

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Only a connection's own deadline ends the writer's wait, and only while
// a wait is watched; the reason names the broker and the request.
func TestUnansweredEndsTheWaitOnADeadline(t *testing.T) {
	var st stall
	u := Unanswered{On: st.fail}
	broker := kgo.BrokerMetadata{Host: "10.0.0.7", Port: 9092}
	deadline := fmt.Errorf("read tcp: %w", os.ErrDeadlineExceeded)
	u.OnBrokerRead(broker, 0, 0, 0, 20*time.Second, deadline) // nothing watched: no effect

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	st.watch(cancel)
	u.OnBrokerRead(broker, 0, 0, 0, time.Second, context.DeadlineExceeded) // a context's end
	u.OnBrokerWrite(broker, 0, 10, 0, time.Second, errors.New("connection reset"))
	if ctx.Err() != nil {
		t.Fatalf("the wait ended on %v, not a deadline of the connection", context.Cause(ctx))
	}
	u.OnBrokerRead(broker, 0, 0, 0, 20*time.Second, deadline)
	cause := context.Cause(ctx)
	if !errors.Is(cause, ErrUnanswered) || !strings.Contains(cause.Error(), "broker 10.0.0.7:9092 took 20s without answering a Produce request") {
		t.Fatalf("cause = %v", cause)
	}

	ctx2, cancel2 := context.WithCancelCause(context.Background())
	defer cancel2(nil)
	st.watch(cancel2)
	st.watch(nil)
	u.OnBrokerWrite(broker, 0, 0, 0, 10*time.Second, deadline)
	if ctx2.Err() != nil {
		t.Fatal("a wait no longer watched was ended")
	}
}
