package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/schemas"
)

// backlog builds one backlog of sysbench transactions while every consumer
// of the primary's binlog is stopped (the replicas keep fetching into their
// relay logs, as replicas whose SQL thread stopped would), then lets each
// stage and each baseline work it off alone, one after the other.
func (s *stack) backlog(ctx context.Context, res *results) error {
	s.stopServices(res)
	for _, r := range s.replicas {
		if _, err := r.db.ExecContext(ctx, "STOP SLAVE SQL_THREAD"); err != nil {
			return fmt.Errorf("stop the %s replica's SQL thread: %w", r.mode, err)
		}
	}
	from, err := s.head(ctx)
	if err != nil {
		return err
	}
	out, err := s.sysbench(ctx, "run", "--threads=8", "--time=0", fmt.Sprintf("--events=%d", s.o.backlog))
	if err != nil {
		return err
	}
	to, err := s.head(ctx)
	if err != nil {
		return err
	}
	if m := sysbenchRate.FindStringSubmatch(out); m != nil {
		s.log.Info("backlog written", "transactions", m[1], "txn_per_s", m[2], "gtids", fmt.Sprintf("0-1-%d..%d", from+1, to))
	}
	for _, r := range s.replicas {
		if err := waitRelay(ctx, r, to); err != nil {
			return err
		}
	}

	// CPU per row of the decode and of the producer, with the primary
	// server and the broker under them: on a shared box they bound the
	// producer's rate against the decode's.
	cpu0, err := s.cpu()
	if err != nil {
		return err
	}
	rows, dt, err := s.decode(ctx, from, to)
	if err != nil {
		return fmt.Errorf("raw go-mysql decode: %w", err)
	}
	res.add("decode", rate(rows, dt))
	cpu1, err := s.cpu()
	if err != nil {
		return err
	}
	perRow := func(name string) float64 { return (cpu1[name] - cpu0[name]) / float64(rows) * 1e6 }
	res.add("cpu_decode", perRow("bench"))
	res.add("cpu_decode_primary", perRow("primary"))

	primaryEnd0, err := s.endOffsets(ctx, s.cfg.Kafka.PrimaryTopic)
	if err != nil {
		return err
	}
	published := func(ctx context.Context) (int64, bool, error) {
		ends, err := s.endOffsets(ctx, s.cfg.Kafka.PrimaryTopic)
		if err != nil {
			return 0, false, err
		}
		done := ends[0] - primaryEnd0[0]
		if done < rows {
			return done, false, nil
		}
		last, err := s.lastPublished(ctx, ends[0])
		return done, last >= to, err
	}
	if cpu0, err = s.cpu(); err != nil {
		return err
	}
	n, dt, err := s.catchUp(ctx, "producer", s.startProfiled("producer"), published)
	if err != nil {
		return err
	}
	res.add("producer", rate(n, dt)) // one primary-log record per row change
	if cpu1, err = s.cpu(); err != nil {
		return err
	}
	res.add("cpu_producer", perRow("producer"))
	res.add("cpu_producer_primary", perRow("primary"))
	res.add("cpu_producer_broker", perRow("broker"))

	standbyEnd0, err := s.endOffsets(ctx, s.cfg.Kafka.StandbyTopic)
	if err != nil {
		return err
	}
	// CPU per transaction, with the standby server and the broker under
	// the storage-applier: on a shared box their sum bounds the apply.
	if cpu0, err = s.cpu(); err != nil {
		return err
	}
	n, dt, err = s.catchUp(ctx, "storage-applier", s.startProfiled("storage-applier"), seqProgress(from, to, s.applied))
	if err != nil {
		return err
	}
	res.add("apply", rate(n, dt))
	if cpu1, err = s.cpu(); err != nil {
		return err
	}
	per1000 := func(name string) float64 { return (cpu1[name] - cpu0[name]) / float64(to-from) * 1000 }
	res.add("cpu_apply", per1000("storage-applier"))
	res.add("cpu_standby", per1000("standby"))
	res.add("cpu_apply_broker", per1000("broker"))

	for _, r := range s.replicas {
		start := func() error {
			_, err := r.db.ExecContext(ctx, "START SLAVE SQL_THREAD")
			return err
		}
		if cpu0, err = s.cpu(); err != nil {
			return err
		}
		n, dt, err = s.catchUp(ctx, r.mode+" replica", start, seqProgress(from, to, func(ctx context.Context) (int64, error) {
			return gtidSeq(ctx, r.db, "SELECT @@gtid_slave_pos")
		}))
		if err != nil {
			return err
		}
		res.add("native_"+r.mode, rate(n, dt))
		if r.mode == "serial" {
			if cpu1, err = s.cpu(); err != nil {
				return err
			}
			res.add("cpu_native", per1000("replica"))
		}
	}

	// The cache's progress is in standby-log offsets (rows and transaction
	// markers); its rate is counted in rows.
	// The cache-applier and its baseline on the single Redis, and on the
	// Redis Cluster with --redis-cluster.
	type target struct {
		name, service, group string
		rdb                  redis.UniversalClient
	}
	caches := []target{{"", "cache-applier", s.cfg.Cache.Group, s.rdb}}
	if s.cluster != nil {
		caches = append(caches, target{"_cluster", clusterCache, clusterGroup(s.cfg), s.cluster})
	}
	for _, c := range caches {
		total, err := s.cacheLeft(ctx, c.group)
		if err != nil {
			return err
		}
		if cpu0, err = s.cpu(); err != nil {
			return err
		}
		n, dt, err = s.catchUp(ctx, c.service, s.startProfiled(c.service), func(ctx context.Context) (int64, bool, error) {
			left, err := s.cacheLeft(ctx, c.group)
			return total - left, left == 0, err
		})
		if err != nil {
			return err
		}
		if cpu1, err = s.cpu(); err != nil {
			return err
		}
		if c.service == clusterCache {
			s.stop(clusterCache, nil) // not part of the lag phase
		} else {
			res.add("cpu_cache", perRow("cache-applier"))
			res.add("cpu_cache_redis", perRow("redis"))
			res.add("cpu_cache_broker", perRow("broker"))
		}
		res.add("cache"+c.name, rate(n, dt)*float64(rows)/float64(total))
		if err := s.hset(ctx, res, c.name, standbyEnd0, c.rdb); err != nil {
			return fmt.Errorf("plain HSET baseline: %w", err)
		}
	}
	return nil
}

// binlogFrom streams the primary's binlog after its transaction from, to a
// client that registers as serverID.
func binlogFrom(cfg *config.Config, serverID uint32, from int64) (*replication.BinlogStreamer, func(), error) {
	host, port, _ := strings.Cut(cfg.Primary.Address, ":")
	p, _ := strconv.Atoi(port)
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: serverID, Flavor: gomysql.MariaDBFlavor, Host: host, Port: uint16(p), User: cfg.Primary.User,
		Password: cfg.Primary.Password, TimestampStringLocation: time.UTC, Logger: quietLog,
	})
	set, err := gomysql.ParseMariadbGTIDSet(fmt.Sprintf("0-1-%d", from))
	if err != nil {
		syncer.Close()
		return nil, nil, err
	}
	stream, err := syncer.StartSyncGTID(set)
	if err != nil {
		syncer.Close()
		return nil, nil, err
	}
	return stream, syncer.Close, nil
}

// quietLog keeps go-mysql's connection chatter out of the report.
var quietLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func rate(n int64, dt time.Duration) float64 { return float64(n) / dt.Seconds() }

// catchUp starts a stage on its backlog and measures its pace from its
// first visible progress until it has done everything: what it did before
// (and its start-up) is left out, as is the poll's resolution at the end.
// progress reports the units done since the backlog was built and whether
// the stage has finished.
func (s *stack) catchUp(ctx context.Context, name string, run func() error, progress func(context.Context) (int64, bool, error)) (int64, time.Duration, error) {
	start := time.Now()
	if err := run(); err != nil {
		return 0, 0, fmt.Errorf("start the %s: %w", name, err)
	}
	var first int64
	var t0 time.Time
	deadline := start.Add(15 * time.Minute)
	for {
		done, finished, err := progress(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("progress of the %s: %w", name, err)
		}
		now := time.Now()
		if finished {
			if t0.IsZero() || done == first { // done within one poll
				t0, first = start, 0
			}
			s.log.Info("caught up", "stage", name, "units", done, "took", now.Sub(start).Round(time.Millisecond))
			return done - first, now.Sub(t0), nil
		}
		if t0.IsZero() && done > 0 {
			t0, first = now, done
		}
		if now.After(deadline) {
			return 0, 0, fmt.Errorf("the %s did not catch up within 15 minutes (%d done; logs under %s)", name, done, s.o.dev)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startProfiled starts a service, profiled with --profile.
func (s *stack) startProfiled(name string) func() error {
	return func() error {
		err := s.start(name)
		if err == nil {
			s.profileCPU(name, "", 3*time.Second)
		}
		return err
	}
}

// seqProgress counts the transactions a stage applied of (from, to].
func seqProgress(from, to int64, at func(context.Context) (int64, error)) func(context.Context) (int64, bool, error) {
	return func(ctx context.Context) (int64, bool, error) {
		n, err := at(ctx)
		return n - from, n >= to, err
	}
}

// lastPublished is the sequence number of the last transaction in the
// primary log, whose records end at end.
func (s *stack) lastPublished(ctx context.Context, end int64) (int64, error) {
	kr, err := kafka.LastCommitted(ctx, s.opts, s.cfg.Kafka.PrimaryTopic, 0, kafka.Bounds{End: end})
	if err != nil || kr == nil {
		return 0, err
	}
	r, err := schemas.Decode(kr.Value)
	if err != nil {
		return 0, err
	}
	return parseSeq(r.Txn.GTID)
}

// waitRelay waits until a replica's IO thread has fetched the backlog.
func waitRelay(ctx context.Context, r replica, to int64) error {
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		rows, err := r.db.QueryContext(ctx, "SHOW SLAVE STATUS")
		if err != nil {
			return err
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		var io string
		for i, c := range cols {
			vals[i] = new(any)
			if c == "Gtid_IO_Pos" {
				vals[i] = &io
			}
		}
		if rows.Next() {
			err = rows.Scan(vals...)
		}
		rows.Close()
		if err != nil {
			return err
		}
		if n, err := parseSeq(io); err == nil && n >= to {
			return nil
		}
	}
	return fmt.Errorf("the %s replica's IO thread did not fetch up to 0-1-%d within 5 minutes", r.mode, to)
}

// decode is the baseline under the producer: go-mysql reading and decoding
// the backlog's binlog events, nothing else. It returns the row changes.
func (s *stack) decode(ctx context.Context, from, to int64) (int64, time.Duration, error) {
	start := time.Now()
	stream, closeSyncer, err := binlogFrom(s.cfg, 4499, from)
	if err != nil {
		return 0, 0, err
	}
	defer closeSyncer()
	var rows int64
	var seq uint64
	for {
		ev, err := stream.GetEvent(ctx)
		if err != nil {
			return 0, 0, err
		}
		switch e := ev.Event.(type) {
		case *replication.MariadbGTIDEvent:
			seq = e.GTID.SequenceNumber
		case *replication.RowsEvent:
			n := int64(len(e.Rows))
			if e.Type() == replication.EnumRowsEventTypeUpdate {
				n /= 2
			}
			rows += n
		case *replication.XIDEvent:
			if int64(seq) >= to {
				return rows, time.Since(start), nil
			}
		}
	}
}

// hset is the baseline under the cache-applier: the backlog's rows, read
// from the standby log beforehand, written to Redis as plain pipelined
// HSET (DEL for deletes) in batches of 500, with no version guard. On the
// single Redis (name ""), the CPU it and Redis spend per row too.
func (s *stack) hset(ctx context.Context, res *results, name string, from map[int32]int64, rdb redis.UniversalClient) error {
	type op struct {
		key    string
		fields []any
	}
	var ops []op
	topic := s.cfg.Kafka.StandbyTopic
	ends, err := s.endOffsets(ctx, topic)
	if err != nil {
		return err
	}
	for p, end := range ends {
		err := kafka.Scan(ctx, s.opts, topic, p, from[p], end, func(kr *kgo.Record) error {
			r, err := schemas.Decode(kr.Value)
			if err != nil || r.Op == schemas.OpDDL || r.Op == schemas.OpPosition {
				return err
			}
			key := "hset:" + r.Table + ":" + *r.Image()["id"]
			if r.Op == schemas.OpDelete {
				ops = append(ops, op{key: key})
				return nil
			}
			var fields []any
			for _, c := range r.Columns {
				if v := r.After[c.Name]; v != nil {
					fields = append(fields, c.Name, *v)
				}
			}
			ops = append(ops, op{key, fields})
			return nil
		})
		if err != nil {
			return err
		}
	}
	cpu0, err := s.cpu()
	if err != nil {
		return err
	}
	start := time.Now()
	for i := 0; i < len(ops); i += 500 {
		pipe := rdb.Pipeline()
		for _, o := range ops[i:min(i+500, len(ops))] {
			if o.fields == nil {
				pipe.Del(ctx, o.key)
			} else {
				pipe.HSet(ctx, o.key, o.fields...)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return err
		}
	}
	res.add("hset"+name, rate(int64(len(ops)), time.Since(start)))
	cpu1, err := s.cpu()
	if err != nil || name != "" {
		return err
	}
	res.add("cpu_hset", (cpu1["bench"]-cpu0["bench"])/float64(len(ops))*1e6)
	res.add("cpu_hset_redis", (cpu1["redis"]-cpu0["redis"])/float64(len(ops))*1e6)
	return nil
}
