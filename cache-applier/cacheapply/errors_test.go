package cacheapply

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/lockstep-dr/lockstep/internal/service/classifytest"
)

// replyError is a Redis error reply as go-redis returns it.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

var _ redis.Error = replyError("")

func TestClassifyRedis(t *testing.T) {
	classifytest.Run(t, classifyRedis, []classifytest.Case{
		{Err: replyError("WRONGTYPE Operation against a key holding the wrong kind of value script: abc"), Permanent: true, Hint: "key_prefix"},
		{Err: fmt.Errorf("write 3 cache keys: %w", replyError("NOPERM User lockstep has no permissions to run the 'evalsha' command")), Permanent: true, Hint: "grant"},
		{Err: replyError("WRONGPASS invalid username-password pair"), Permanent: true, Hint: "redis.password"},
		{Err: replyError("CROSSSLOT Keys in request don't hash to the same slot"), Permanent: true, Hint: "VersionKey"},
		{Err: replyError("MOVED 3999 127.0.0.1:6381")},
		{Err: replyError("CLUSTERDOWN The cluster is down")},
		{Err: replyError("ERR unknown command 'FCALL'"), Permanent: true},
		{Err: replyError("ERR max number of clients reached")},
		{Err: replyError("ERR Script attempted to access a non local key in a cluster node script: f64e5a0d, on @user_script:32.")},
		{Err: replyError("LOADING Redis is loading the dataset in memory")},
		{Err: replyError("READONLY You can't write against a read only replica.")},
		{Err: replyError("BUSY Redis is busy running a script")},
		{Err: replyError("OOM command not allowed when used memory > 'maxmemory'.")},
		{Err: replyError("NOSCRIPT No matching script")},
		{Err: io.EOF},
		{Err: context.DeadlineExceeded},
	})
}
