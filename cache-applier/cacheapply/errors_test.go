package cacheapply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/internal/service"
)

// replyError is a Redis error reply as go-redis returns it.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

var _ redis.Error = replyError("")

func TestClassifyRedis(t *testing.T) {
	for _, c := range []struct {
		err       error
		permanent bool
		hint      string
	}{
		{replyError("WRONGTYPE Operation against a key holding the wrong kind of value script: abc"), true, "key_prefix"},
		{fmt.Errorf("write 3 cache keys: %w", replyError("NOPERM User lockstep has no permissions to run the 'evalsha' command")), true, "grant"},
		{replyError("WRONGPASS invalid username-password pair"), true, "redis.password"},
		{replyError("ERR unknown command 'FCALL'"), true, ""},
		{replyError("ERR max number of clients reached"), false, ""},
		{replyError("LOADING Redis is loading the dataset in memory"), false, ""},
		{replyError("READONLY You can't write against a read only replica."), false, ""},
		{replyError("BUSY Redis is busy running a script"), false, ""},
		{replyError("OOM command not allowed when used memory > 'maxmemory'."), false, ""},
		{replyError("NOSCRIPT No matching script"), false, ""},
		{io.EOF, false, ""},
		{context.DeadlineExceeded, false, ""},
	} {
		got := classifyRedis(c.err)
		if service.IsPermanent(got) != c.permanent {
			t.Errorf("classifyRedis(%v) permanent = %v, want %v", c.err, service.IsPermanent(got), c.permanent)
		}
		if !errors.Is(got, c.err) {
			t.Errorf("classifyRedis(%v) = %v does not wrap the error", c.err, got)
		}
		if c.hint != "" && !strings.Contains(got.Error(), c.hint) {
			t.Errorf("classifyRedis(%v) = %q, want a hint with %q", c.err, got, c.hint)
		}
	}
}
