package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/wan"
)

// lastKind is the fault every run ends with, after the drain and the
// checks: a failover cannot be undone under the workload.
const lastKind = "wan-failover"

// unreachableAt is what failover says when it lost the primary: the GTID
// position through which the standby holds the primary's transactions.
var unreachableAt = regexp.MustCompile(`the primary is unreachable: the standby holds everything the primary log holds, through GTID position "([^"]*)"`)

// failoverAcrossACut ends the run as the loss of the primary site does:
// the link between the sites is cut while the primary goes on taking
// writes, the producer is stopped (the runbook's first step), and
// storage-applier failover runs at the standby site through a link of its
// own to the primary (300 ms round trip, so that its steps last), cut as
// failover waits for the applier or as it starts comparing. Failover must
// make the standby ready and name the GTID position through which the
// standby holds the primary's transactions; the primary must count as
// many transactions missing from it as from the standby's checkpoint.
// With the primary reachable again and its writes stopped, failover run
// again must count exactly the transactions the standby lacks. recovery
// is the first failover's run time.
func (s *stack) failoverAcrossACut(ctx context.Context, w *workload, rng *rand.Rand) faultResult {
	r := faultResult{kind: lastKind}
	r.recovery, r.err = s.failoverAcross(ctx, w, rng)
	return r
}

func (s *stack) failoverAcross(ctx context.Context, w *workload, rng *rand.Rand) (took time.Duration, err error) {
	link, err := wan.NewLink("failover-primary", "127.0.0.1:0", s.cfg.Primary.Address)
	if err != nil {
		return 0, err
	}
	defer link.Close()
	if err := link.Set(wan.Shape{RTT: 300 * time.Millisecond}); err != nil {
		return 0, err
	}
	wctx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	writing := make(chan error, 1)
	go func() { writing <- w.run(wctx) }()
	time.Sleep(time.Second)

	s.wan.Cut()
	if err := s.signal(pidFiles["producer"], syscall.SIGTERM, true); err != nil {
		return 0, err
	}
	start := time.Now()
	at := []string{"1/5 fenced", "4/5 verify:"}[rng.IntN(2)]
	out, err := s.failover(link.Addr, "2m", at, link.Cut)
	took = time.Since(start)
	if err == nil && !strings.Contains(out, "READY: the standby") {
		err = fmt.Errorf("not READY")
	}
	if err != nil {
		return took, fmt.Errorf("storage-applier failover, the link to the primary cut at %q: %w:\n%s", at, err, out)
	}
	named := unreachableAt.FindStringSubmatch(out)
	if named == nil {
		return took, fmt.Errorf("failover did not say from which GTID position transactions may be lost:\n%s", out)
	}

	stopWork()
	if err := <-writing; err != nil {
		return took, err
	}
	if err := link.Restore(); err != nil {
		return took, err
	}
	cp, err := mysql.Checkpoint(ctx, s.standby, s.cfg.Applier.Name)
	if err != nil {
		return took, err
	}
	_, lost, err := mysql.Unapplied(ctx, s.primary, cp.GTIDs)
	if err != nil {
		return took, err
	}
	// the position failover named is the standby's, as the primary counts
	// them (GTID sets may be written differently)
	if _, after, err := mysql.Unapplied(ctx, s.primary, named[1]); err != nil || after != lost {
		return took, fmt.Errorf("failover said the standby holds the primary's transactions through %q (%d behind the primary, %v); its checkpoint %q is %d behind:\n%s", named[1], after, err, cp.GTIDs, lost, out)
	}
	// The primary is ahead, so this run ends saying the standby differs;
	// what it must get right is the count.
	again, _ := s.failover(link.Addr, "30s", "", nil)
	if want := fmt.Sprintf("committed %d transaction(s) the standby does not have", lost); !strings.Contains(again, want) {
		return took, fmt.Errorf("with the primary reachable again, failover should say %q:\n%s", want, again)
	}
	return took, nil
}

// failover runs storage-applier failover with the primary at addr and
// returns what it printed; once it has printed at, it calls then.
func (s *stack) failover(addr, wait, at string, then func()) (string, error) {
	cmd := s.command("storage-applier", "failover", "--wait", wait)
	cmd.Env = append(os.Environ(), "LOCKSTEP_PRIMARY_ADDRESS="+addr)
	out := &watched{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for then != nil {
		select {
		case err := <-exited:
			return out.String(), err
		case <-time.After(10 * time.Millisecond):
		}
		if strings.Contains(out.String(), at) {
			then()
			break
		}
	}
	err := <-exited
	return out.String(), err
}

// watched is a command's output, read while it runs.
type watched struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *watched) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *watched) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
