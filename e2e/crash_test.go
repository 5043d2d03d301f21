package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-dr/lockstep/internal/crashpoint"
	"github.com/lockstep-dr/lockstep/internal/testenv"
)

// waitKilled waits until the service died of SIGKILL.
func (p *proc) waitKilled(within time.Duration) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("%s did not reach its crash point within %s", p.name, within)
	}
	if p.cmd.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		p.t.Fatalf("%s ended with %v, want SIGKILL at its crash point", p.name, p.err)
	}
}

// kill -9 of each service in the window that matters most for it; it is
// started again without the crash point, and the pipeline must end exactly
// where a run without the crash would.
func TestKill9InEachWindow(t *testing.T) {
	for _, c := range []struct {
		service, point string
		hit            int
	}{
		{"storage-applier", crashpoint.ApplierCommitted, 40},       // between standby COMMIT and publish
		{"producer", crashpoint.ProducerMidTxn, 170},               // inside a Kafka transaction
		{"cache-applier", crashpoint.CacheWritten, 3},              // between Redis writes and the offset commit
		{"producer", crashpoint.ProducerMidTxn + "-large", 10_000}, // inside a 20,000-row transaction
	} {
		t.Run(c.point, func(t *testing.T) {
			e := newEnv(t)
			p := startPipeline(t, e)
			createTables(t, e)
			procs := map[string]**proc{"producer": &p.producer, "storage-applier": &p.applier, "cache-applier": &p.cacheApplier}
			victim := procs[c.service]
			if c.service == "producer" {
				p.producer.stopTailing(e.Primary, e.Cfg.Producer.ServerID)
			}
			(*victim).stop(syscall.SIGTERM)
			point := c.point
			bigTxn := point == crashpoint.ProducerMidTxn+"-large"
			if bigTxn {
				point = crashpoint.ProducerMidTxn
			}
			*victim = startEnv(t, p.cfgPath, c.service, []string{fmt.Sprintf("LOCKSTEP_CRASHPOINT=%s:%d", point, c.hit)})
			if c.service == "producer" {
				(*victim).waitTailing(e.Primary, e.Cfg.Producer.ServerID)
			}
			if bigTxn {
				testenv.Exec(t, e.Primary, fmt.Sprintf("INSERT INTO %s.items SELECT seq, 'big', seq, NOW(6) FROM %s", e.DB, e.Seq(20000)))
			} else {
				writeBatch(t, e, 0, 200)
			}
			(*victim).waitKilled(60 * time.Second)
			*victim = start(t, p.cfgPath, c.service)
			writeBatch(t, e, 100_000, 50)
			consistent(t, e, 90*time.Second)
			assertExactlyOnce(t, e)
		})
	}
}
