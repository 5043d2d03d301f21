package cacheapply

import (
	"runtime"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lockstep-dr/lockstep/schemas"
)

// decodeChunk is how many records one worker decodes at a time: the
// reader waits for at most one chunk before it has work.
const decodeChunk = 64

// decoded decodes a batch's records on every core, ahead of the one loop
// that reads them in order (hooks, plans, writes): decoding is the largest
// part of a record's cost in the cache-applier (about two fifths in a
// catch-up profile), and the part that needs no order.
type decoded struct {
	recs  []*kgo.Record
	out   []*schemas.Record
	errs  []error
	ready []chan struct{} // per chunk, closed once it is decoded
	next  atomic.Int64    // the next chunk a worker takes
	stop  atomic.Bool
}

func decodeAhead(recs []*kgo.Record) *decoded {
	chunks := (len(recs) + decodeChunk - 1) / decodeChunk
	d := &decoded{recs: recs, out: make([]*schemas.Record, len(recs)), errs: make([]error, len(recs)), ready: make([]chan struct{}, chunks)}
	for i := range d.ready {
		d.ready[i] = make(chan struct{})
	}
	for range min(runtime.GOMAXPROCS(0), chunks) {
		go d.work()
	}
	return d
}

// work decodes chunks in the order they come, until none is left or the
// reader gave up on the batch.
func (d *decoded) work() {
	for {
		c := int(d.next.Add(1) - 1)
		if c >= len(d.ready) {
			return
		}
		if !d.stop.Load() {
			for i := c * decodeChunk; i < min((c+1)*decodeChunk, len(d.recs)); i++ {
				// the client never reuses a fetch's bytes
				d.out[i], d.errs[i] = schemas.DecodeShared(d.recs[i].Value)
			}
		}
		close(d.ready[c])
	}
}

// record is the i-th record, decoded; it waits for its chunk.
func (d *decoded) record(i int) (*schemas.Record, error) {
	<-d.ready[i/decodeChunk]
	return d.out[i], d.errs[i]
}

// close tells the workers to skip what is left: the reader stopped early.
func (d *decoded) close() { d.stop.Store(true) }
