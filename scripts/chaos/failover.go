package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
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
// own to the primary, cut at a random moment of its run. Failover must
// make the standby ready; when it lost the primary, the standby must hold
// exactly the position it names. With the primary reachable again and its
// writes stopped, failover run again must count exactly the transactions
// the standby lacks. recovery is the first failover's run time.
func (s *stack) failoverAcrossACut(ctx context.Context, w *workload, rng *rand.Rand) faultResult {
	r := faultResult{kind: lastKind}
	link, err := wan.NewLink("failover-primary", "127.0.0.1:0", s.cfg.Primary.Address)
	if err != nil {
		r.err = err
		return r
	}
	defer link.Close()
	if r.err = link.Set(wanShape); r.err != nil {
		return r
	}
	wctx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	writing := make(chan error, 1)
	go func() { writing <- w.run(wctx) }()
	time.Sleep(time.Second)

	s.wan.Cut()
	if r.err = s.signal(pidFiles["producer"], syscall.SIGTERM, true); r.err != nil {
		return r
	}
	start := time.Now()
	out, err := s.failover(link.Addr, "2m", func() {
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Millisecond)
		link.Cut()
	})
	r.recovery = time.Since(start)
	if err != nil {
		r.err = err
		return r
	}
	named := unreachableAt.FindStringSubmatch(out)

	stopWork()
	if err := <-writing; err != nil {
		r.err = err
		return r
	}
	if r.err = link.Restore(); r.err != nil {
		return r
	}
	cp, err := mysql.Checkpoint(ctx, s.standby, s.cfg.Applier.Name)
	if err != nil {
		r.err = err
		return r
	}
	_, lost, err := mysql.Unapplied(ctx, s.primary, cp.GTIDs)
	if err != nil {
		r.err = err
		return r
	}
	if named != nil {
		// the position failover named is the standby's, as the primary
		// counts them (GTID sets may be written differently)
		_, after, err := mysql.Unapplied(ctx, s.primary, named[1])
		if err != nil {
			r.err = err
			return r
		}
		if after != lost {
			r.err = fmt.Errorf("failover said the standby holds the primary's transactions through %q, %d behind the primary; its checkpoint %q is %d behind:\n%s", named[1], after, cp.GTIDs, lost, out)
			return r
		}
	}
	again, err := s.failover(link.Addr, "30s", func() {})
	if err != nil {
		r.err = err
		return r
	}
	if want := fmt.Sprintf("committed %d transaction(s) the standby does not have", lost); !strings.Contains(again, want) {
		r.err = fmt.Errorf("with the primary reachable again, failover should say %q:\n%s", want, again)
	}
	return r
}

// failover runs storage-applier failover with the primary at addr, calls
// meanwhile while it runs, and wants it to end with the standby READY.
func (s *stack) failover(addr, wait string, meanwhile func()) (string, error) {
	cmd := s.command("storage-applier", "failover", "--wait", wait)
	cmd.Env = append(os.Environ(), "LOCKSTEP_PRIMARY_ADDRESS="+addr)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	meanwhile()
	err := cmd.Wait()
	if err == nil && !strings.Contains(out.String(), "READY: the standby") {
		err = fmt.Errorf("no READY")
	}
	if err != nil {
		return "", fmt.Errorf("storage-applier failover (primary at %s): %w:\n%s", addr, err, out.String())
	}
	return out.String(), nil
}
