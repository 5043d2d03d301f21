package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/internal/kafka"
	"github.com/lockstep-dr/lockstep/internal/wan"
)

// placement is where the producer and Kafka run: which of the pipeline's
// connections cross between the sites. The storage-applier and the
// cache-applier always run at the standby site with the standby and
// Redis; their few reads of the primary (the RPO) cross the WAN.
type placement struct {
	name, what                                   string
	producerToKafka, producerToPrimary, appliers bool // crossing: to the broker, to the primary, appliers to the broker
}

var placements = []placement{
	{name: "binlog", what: "producer and Kafka at the standby site, the producer reading the binlog across the WAN (as a native replica does)", producerToPrimary: true},
	{name: "kafka", what: "producer at the primary site, writing to Kafka at the standby site", producerToKafka: true},
	{name: "consume", what: "producer and Kafka at the primary site, the appliers consuming across the WAN", appliers: true},
}

// wanResult is one placement at one shape of the WAN.
type wanResult struct {
	placement string
	shape     wan.Shape
	// backlog: transactions/s from the primary to the cache, Kafka
	// transactions/s committed to the primary log meanwhile
	txnPerS, kafkaTxnPerS float64
	// steady load: the rate sysbench kept, each probe's time to the cache
	// and to the native replica reading the binlog across the same WAN
	lagRate                          float64
	cacheLag, standbyLag, replicaLag []time.Duration
	probes, probesPlanned            int
}

// wanPhase measures lockstep across a simulated WAN (--wan): for each
// placement, at RTT 0 (the same proxies, nothing delayed: the LAN in the
// same run) and at each RTT asked, each with the bandwidth cap, a backlog's
// throughput from primary to cache and the lag at a steady rate. The
// serial MariaDB replica reads the binlog across the same WAN, as the
// anchor of the lag.
func (s *stack) wanPhase(ctx context.Context, res *results) error {
	primaryLink, err := wan.NewLink("primary", "127.0.0.1:0", s.cfg.Primary.Address)
	if err != nil {
		return err
	}
	defer primaryLink.Close()
	broker := s.cfg.Kafka.Brokers[0]
	kafkaLink, err := wan.NewLink("kafka", "127.0.0.1:0", broker)
	if err != nil {
		return err
	}
	defer kafkaLink.Close()
	if err := s.anchorAcross(ctx, primaryLink.Addr); err != nil {
		return err
	}
	via := "LOCKSTEP_KAFKA_CONNECT_VIA=" + broker + "=" + kafkaLink.Addr
	across := "LOCKSTEP_PRIMARY_ADDRESS=" + primaryLink.Addr
	for _, pl := range s.o.placements {
		s.siteEnv = map[string][]string{"storage-applier": {across}, "cache-applier": {across}}
		if pl.producerToKafka {
			s.siteEnv["producer"] = []string{via}
		}
		if pl.producerToPrimary {
			s.siteEnv["producer"] = []string{across}
		}
		if pl.appliers {
			s.siteEnv["storage-applier"] = append(s.siteEnv["storage-applier"], via)
			s.siteEnv["cache-applier"] = append(s.siteEnv["cache-applier"], via)
		}
		for _, rtt := range append([]time.Duration{0}, s.o.wanRTTs...) {
			shape := wan.Shape{RTT: rtt, Jitter: rtt / 20, BytesPerSec: s.o.wanRate}
			for _, l := range []*wan.Link{primaryLink, kafkaLink} {
				if err := l.Set(shape); err != nil {
					return err
				}
			}
			s.log.Info("WAN", "placement", pl.name, "shape", shape)
			r := wanResult{placement: pl.name, shape: shape}
			if err := s.wanBacklog(ctx, &r); err != nil {
				return fmt.Errorf("%s at %s: backlog: %w", pl.name, shape, err)
			}
			if err := s.wanLag(ctx, &r); err != nil {
				return fmt.Errorf("%s at %s: steady load: %w", pl.name, shape, err)
			}
			res.wan = append(res.wan, r)
		}
	}
	return nil
}

// anchorAcross points the serial replica at the primary through the WAN
// link and stops the two parallel ones.
func (s *stack) anchorAcross(ctx context.Context, addr string) error {
	host, port, _ := strings.Cut(addr, ":")
	anchor := s.replicas[0]
	if _, err := anchor.db.ExecContext(ctx, fmt.Sprintf("STOP SLAVE; CHANGE MASTER TO master_host='%s', master_port=%s; START SLAVE", host, port)); err != nil {
		return fmt.Errorf("point the %s replica across the WAN: %w", anchor.mode, err)
	}
	for i, r := range s.replicas[1:] {
		if _, err := r.db.ExecContext(ctx, "STOP SLAVE"); err != nil {
			return fmt.Errorf("stop the %s replica: %w", r.mode, err)
		}
		s.replicas[i+1].stopped = true
	}
	return nil
}

// wanBacklog times a backlog of o.wanBacklog transactions through the
// whole pipeline, started on it at once: from its first visible progress
// until the cache holds all of it.
func (s *stack) wanBacklog(ctx context.Context, r *wanResult) error {
	s.stopServices(nil)
	from, err := s.head(ctx)
	if err != nil {
		return err
	}
	if _, err := s.sysbench(ctx, "run", "--threads=8", "--time=0", fmt.Sprintf("--events=%d", s.o.wanBacklog)); err != nil {
		return err
	}
	to, err := s.head(ctx)
	if err != nil {
		return err
	}
	ends, err := s.endOffsets(ctx, s.cfg.Kafka.PrimaryTopic)
	if err != nil {
		return err
	}
	applied := seqProgress(from, to, s.applied)
	n, dt, err := s.catchUp(ctx, "pipeline", s.startAll, func(ctx context.Context) (int64, bool, error) {
		n, done, err := applied(ctx)
		if done && err == nil {
			var left int64
			left, err = s.cacheLeft(ctx, s.cfg.Cache.Group)
			done = left == 0
		}
		return n, done, err
	})
	if err != nil {
		return err
	}
	r.txnPerS = rate(n, dt)
	commits, err := s.kafkaCommits(ctx, ends[0])
	r.kafkaTxnPerS = rate(commits, dt)
	return err
}

// kafkaCommits counts the Kafka transactions committed to the primary log
// from offset from on: each ends in a commit marker, an offset without a
// record.
func (s *stack) kafkaCommits(ctx context.Context, from int64) (int64, error) {
	ends, err := s.endOffsets(ctx, s.cfg.Kafka.PrimaryTopic)
	if err != nil {
		return 0, err
	}
	var records int64
	err = kafka.Scan(ctx, s.opts, s.cfg.Kafka.PrimaryTopic, 0, from, ends[0], func(*kgo.Record) error {
		records++
		return nil
	})
	return ends[0] - from - records, err
}

// wanLag runs sysbench at o.wanLagRate for o.wanLagTime with the pipeline
// running, probing as the lag phase does.
func (s *stack) wanLag(ctx context.Context, r *wanResult) error {
	if err := s.drain(ctx); err != nil {
		return err
	}
	from, err := s.head(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	p := &prober{s: s, anchor: s.replicas[0]}
	pctx, stop := context.WithCancel(ctx)
	probing := make(chan error, 1)
	go func() { probing <- p.run(pctx) }()
	_, err = s.sysbench(ctx, "run", "--threads=4", "--events=0", fmt.Sprintf("--rate=%d", s.o.wanLagRate), fmt.Sprintf("--time=%d", int(s.o.wanLagTime.Seconds())))
	if err != nil && strings.Contains(err.Error(), "event queue is full") {
		err = nil // the primary fell behind the rate: what it kept is reported
	}
	took := time.Since(start)
	to, herr := s.head(ctx)
	stop()
	if perr := <-probing; err == nil {
		err = perr
	}
	if err == nil {
		err = herr
	}
	if err != nil {
		return err
	}
	r.lagRate = float64(to-from-int64(p.sent())) / took.Seconds()
	if err := p.finish(ctx); err != nil {
		return err
	}
	r.replicaLag, r.standbyLag, r.cacheLag = p.lags()
	r.probes, r.probesPlanned = len(r.cacheLag), int(took/probeEvery)
	return nil
}
