package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/testenv"
	"github.com/lockstep-dr/lockstep/internal/wan"
)

// The link between the sites in these tests: 20 ms round trip, ±10%.
var wanShape = wan.Shape{RTT: 20 * time.Millisecond, Jitter: 2 * time.Millisecond}

// wanPipeline starts the three services on two sites joined by a WAN
// link: the storage-applier and the cache-applier at the standby site
// with the standby, Redis and Kafka; the producer across the link from
// what crosses — "kafka": the producer at the primary site, writing to
// Kafka across the WAN (its connections to the broker go through the link,
// kafka.connect_via); "binlog": the producer at the standby site, reading
// the primary's binlog across the WAN as a native replica does;
// "consume": the cache-applier consuming the standby log across the WAN,
// as the appliers do with Kafka at the primary site.
func wanPipeline(t *testing.T, e *testenv.Env, crosses string) (*pipeline, *wan.Link) {
	t.Helper()
	pcfg, ccfg := *e.Cfg, *e.Cfg
	broker := e.Cfg.Kafka.Brokers[0]
	var link *wan.Link
	switch crosses {
	case "kafka":
		link = newLink(t, "producer-kafka", broker)
		pcfg.Kafka.ConnectVia = []string{broker + "=" + link.Addr}
	case "binlog":
		link = newLink(t, "producer-primary", e.Cfg.Primary.Address)
		pcfg.Primary.Address = link.Addr
	case "consume":
		link = newLink(t, "cache-kafka", broker)
		ccfg.Kafka.ConnectVia = []string{broker + "=" + link.Addr}
	}
	if err := link.Set(wanShape); err != nil {
		t.Fatal(err)
	}
	p := &pipeline{cfgPath: writeConfig(t, e.Cfg)}
	p.producer = start(t, writeConfig(t, &pcfg), "producer")
	p.producer.waitTailing(e.Primary, e.Cfg.Producer.ServerID)
	p.applier = start(t, p.cfgPath, "storage-applier")
	p.cacheApplier = start(t, writeConfig(t, &ccfg), "cache-applier")
	return p, link
}

// newLink is a WAN link to target for the test, closed when it ends.
func newLink(t *testing.T, name, target string) *wan.Link {
	t.Helper()
	link, err := wan.NewLink(name, "127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(link.Close)
	return link
}

// The WAN link cut under load, for 10 s and for 2 minutes (past the Kafka
// transaction timeout): the producer fails, restarts until the link is
// back, and resumes from the primary log; nothing lost, nothing applied
// twice (balances grow by one per transaction), no cached value goes back.
// A cut closes the link's connections and refuses new ones.
func TestWANLinkCutUnderLoad(t *testing.T) {
	t.Parallel() // it mostly waits on timeouts (see the package comment)
	for _, cut := range []time.Duration{10 * time.Second, 2 * time.Minute} {
		t.Run(cut.String(), func(t *testing.T) {
			e := newEnv(t)
			_, link := wanPipeline(t, e, "kafka")
			loaded(t, e)
			underLoad(t, e, 21, func() {
				time.Sleep(time.Second)
				link.Cut()
				// Nothing reaches the standby while the link is down.
				time.Sleep(2 * time.Second)
				before := checkpoint(t, e)
				time.Sleep(cut - 2*time.Second)
				if after := checkpoint(t, e); after != before {
					t.Errorf("the standby's checkpoint moved from %d to %d while the link was cut: the producer does not reach Kafka through the link", before, after)
				}
				if err := link.Restore(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(2 * time.Second) // the load goes on across the restored link
			})
		})
	}
}

// loaded creates the test's tables and users 1..20, which underLoad
// updates, and waits for them at both stages.
func loaded(t *testing.T, e *testenv.Env) {
	t.Helper()
	createTables(t, e)
	seedUsers(t, e, 20)
	consistent(t, e, 60*time.Second)
}

// checkpoint is the primary-log offset the standby has applied through.
func checkpoint(t *testing.T, e *testenv.Env) int64 {
	t.Helper()
	cp, err := mysql.Checkpoint(context.Background(), e.Standby, e.Cfg.Applier.Name)
	if err != nil {
		t.Fatal(err)
	}
	return cp.Offset
}

// A half-open link (connections stay open, every byte is dropped: a peer
// gone without a reset, a firewall that forgot the connection) is found
// within a bound, whichever link it is: the producer fails and restarts,
// a consumer says why nothing comes while its client reconnects, and all
// resume once the link carries bytes again.
func TestWANHalfOpenLinkIsDetected(t *testing.T) {
	t.Parallel() // it mostly waits on timeouts (see the package comment)
	// The bounds README "Two sites" states: on the producer's link to
	// Kafka, the client's deadline on a produce (its 10 s timeout and 10 s
	// more; the default kafka.transaction_timeout, 60 s, does not come into
	// it); on the binlog, the read timeout (10 s) and closing the dead
	// stream (10 s); on a consumer's, the deadline on a fetch (its 500 ms
	// wait and 10 s more).
	cases := map[string]struct {
		bound time.Duration
		says  []string
	}{
		"kafka":   {28 * time.Second, []string{"stage failed; restarting", "past the client's deadline: the link to it is down or half-open"}},
		"binlog":  {25 * time.Second, []string{"stage failed; restarting", "no byte from the primary for 10s, though it sends a heartbeat each second: the link is down or half-open"}},
		"consume": {15 * time.Second, []string{"no answer from Kafka in time; the client reconnects and tries again"}},
	}
	for crosses, c := range cases {
		t.Run(crosses, func(t *testing.T) {
			e := newEnv(t)
			p, link := wanPipeline(t, e, crosses)
			who := p.producer
			if crosses == "consume" {
				who = p.cacheApplier
			}
			loaded(t, e)
			underLoad(t, e, 21, func() {
				time.Sleep(time.Second)
				if err := link.HalfOpen(); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				who.waitLogWithin(c.says[0], c.bound)
				t.Logf("the half-open %s link was found after %s", crosses, time.Since(start).Round(100*time.Millisecond))
				mustContain(t, who.logText(), c.says[1:]...)
				link.Heal()
				time.Sleep(2 * time.Second)
			})
		})
	}
}

// A slow link (100 KB/s) under a backlog: the producer carries it at the
// link's pace, without failing, and the sites end equal.
func TestWANSlowLinkCarriesABacklog(t *testing.T) {
	e := newEnv(t)
	p, link := wanPipeline(t, e, "kafka")
	createTables(t, e)
	slow := wanShape
	slow.BytesPerSec = 100_000
	if err := link.Set(slow); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	writeBatch(t, e, 0, 3000)
	consistent(t, e, 3*time.Minute)
	t.Logf("3,000 transactions across a %s link in %s", slow, time.Since(start).Round(100*time.Millisecond))
	if out := p.producer.logText(); strings.Contains(out, "stage failed") {
		t.Errorf("the producer failed on the slow link:\n%s", out)
	}
}

// The WAN link cut while storage-applier failover runs at the standby
// site: the primary site (the producer's link to Kafka and the failover's
// link to the primary) goes as it runs. Failover still makes the standby
// ready with what the primary log holds and says from which GTID position
// transactions may be lost; with the primary reachable again, it counts
// them exactly. The link to the primary goes while failover waits for the
// applier, or while it compares the standby with the primary (the link
// slowed so that the comparison lasts).
func TestWANCutDuringFailover(t *testing.T) {
	for name, at := range map[string]string{"waiting": "1/5 fenced", "comparing": "4/5 verify:"} {
		t.Run(name, func(t *testing.T) { cutDuringFailover(t, at) })
	}
}

func cutDuringFailover(t *testing.T, at string) {
	e := newEnv(t)
	p, kafkaLink := wanPipeline(t, e, "kafka")
	createTables(t, e)
	writeBatch(t, e, 0, 50)
	consistent(t, e, 60*time.Second)
	primaryLink := newLink(t, "failover-primary", e.Cfg.Primary.Address)
	standbySite := *e.Cfg
	standbySite.Primary.Address = primaryLink.Addr
	cfgPath := writeConfig(t, &standbySite)

	// The primary's applications go on writing through the split.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	writing := make(chan error, 1)
	go func() {
		for i := 50; ctx.Err() == nil; i++ {
			if _, err := e.Primary.Exec(fmt.Sprintf("INSERT INTO %s.users VALUES (%d, 'u%d@x', 'n', 0, NULL)", e.DB, i, i)); err != nil {
				writing <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		writing <- nil
	}()
	time.Sleep(time.Second)
	// The sites split as the operator fails over: the producer's link
	// first (were it up, a fenced producer would take its transactional
	// id back, as the runbook's "keep the producer stopped" says), then,
	// at the step at, the failover's own link to the primary.
	p.applier.stop(syscall.SIGTERM)
	kafkaLink.Cut()
	comparing := at == "4/5 verify:" // else while failover waits at step 2 for the applier
	if comparing {
		if err := primaryLink.Set(wan.Shape{RTT: 300 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	failover := start(t, cfgPath, "storage-applier", "failover", "--wait", "2m")
	if comparing {
		p.applier = start(t, p.cfgPath, "storage-applier")
	}
	failover.waitLog(at)
	primaryLink.Cut()
	if !comparing {
		p.applier = start(t, p.cfgPath, "storage-applier")
	}
	out := failover.waitOK(3 * time.Minute)
	// The primary takes writes the standby site will not see.
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		ahead := testenv.Count(t, e.Primary, e.DB+".users") - testenv.Count(t, e.Standby, e.DB+".users")
		return ahead >= 100, fmt.Sprintf("the primary is %d users ahead of the standby", ahead)
	})
	stop()
	if err := <-writing; err != nil {
		t.Fatal(err)
	}
	mustContain(t, out, "storage: NOT COMPARED: the primary "+primaryLink.Addr+" is unreachable",
		"the primary is unreachable: the standby holds everything the primary log holds, through GTID position", "READY: the standby")
	p.applier.stop(syscall.SIGTERM) // as the runbook says

	if err := primaryLink.Restore(); err != nil {
		t.Fatal(err)
	}
	primaryUsers, standbyUsers := testenv.Count(t, e.Primary, e.DB+".users"), testenv.Count(t, e.Standby, e.DB+".users")
	again := start(t, cfgPath, "storage-applier", "failover", "--wait", "30s").waitExit(2 * time.Minute)
	want := fmt.Sprintf("committed %d transaction(s) the standby does not have", primaryUsers-standbyUsers)
	if primaryUsers-standbyUsers < 100 || !strings.Contains(again, want) {
		t.Fatalf("with the primary reachable again (%d users there, %d on the standby), failover should say %q:\n%s", primaryUsers, standbyUsers, want, again)
	}
}
