package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// results holds every sample of a run.
type results struct {
	samples              map[string][]float64
	rssKB                map[string]int64
	standbyLag, cacheLag []time.Duration
	lagRate              float64 // transactions/s the primary committed during the lag phase
	lagTime              time.Duration
	lagKept              bool // sysbench kept the requested rate to the end
}

func newResults() *results {
	return &results{samples: map[string][]float64{}, rssKB: map[string]int64{}}
}

func (r *results) add(name string, v float64) { r.samples[name] = append(r.samples[name], v) }

func (r *results) peak(service string, kb int64) { r.rssKB[service] = max(r.rssKB[service], kb) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

// quantile of sorted durations, in milliseconds.
func quantile(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(d))
	return float64(s[min(len(s)-1, int(q*float64(len(s))))].Microseconds()) / 1000
}

var rows = []struct{ name, what, unit string }{
	{"native_serial", "MariaDB replication, serial", "txn/s"},
	{"native_conservative", "MariaDB replication, 4 threads conservative", "txn/s"},
	{"native_optimistic", "MariaDB replication, 4 threads optimistic", "txn/s"},
	{"apply", "lockstep storage-applier", "txn/s"},
	{"decode", "go-mysql raw binlog decode", "rows/s"},
	{"producer", "lockstep producer (binlog -> primary log)", "rows/s"},
	{"hset", "plain pipelined HSET/DEL, batches of 500", "rows/s"},
	{"cache", "lockstep cache-applier (standby log -> Redis)", "rows/s"},
}

func (r *results) print(w io.Writer) {
	if len(r.samples) > 0 {
		r.printRates(w)
	}
	kept := "sysbench kept the requested rate"
	if !r.lagKept {
		kept = "sysbench stopped: the primary fell behind the requested rate"
	}
	fmt.Fprintf(w, "\nend-to-end lag over %s at %.0f txn/s committed (%s), %d probes:\n  primary commit -> standby commit p50 %.0f ms, p99 %.0f ms, max %.0f ms; -> cache write p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
		r.lagTime.Round(time.Second), r.lagRate, kept, len(r.cacheLag), quantile(r.standbyLag, .5), quantile(r.standbyLag, .99), quantile(r.standbyLag, 1),
		quantile(r.cacheLag, .5), quantile(r.cacheLag, .99), quantile(r.cacheLag, 1))
	var peak int64
	var mem []string
	for _, s := range services {
		peak = max(peak, r.rssKB[s])
		mem = append(mem, fmt.Sprintf("%s %d MiB", s, r.rssKB[s]/1024))
	}
	fmt.Fprintf(w, "peak RSS: %s\n", strings.Join(mem, ", "))
	best, bestMode := 0.0, ""
	for _, mode := range []string{"serial", "conservative", "optimistic"} {
		if m := median(r.samples["native_"+mode]); m > best {
			best, bestMode = m, mode
		}
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	applyVsNative := ratio(median(r.samples["apply"]), best)
	if best > 0 {
		fmt.Fprintf(w, "apply vs the best native mode (%s): %.2f\n", bestMode, applyVsNative)
	}
	fmt.Fprintf(w, "\nRESULT apply_vs_native=%.2f producer_rows_per_s=%.0f producer_vs_decode=%.2f cache_vs_hset=%.2f e2e_p50_ms=%.0f e2e_p99_ms=%.0f e2e_max_ms=%.0f e2e_txn_per_s=%.0f peak_rss_mb=%d\n",
		applyVsNative, median(r.samples["producer"]),
		ratio(median(r.samples["producer"]), median(r.samples["decode"])), ratio(median(r.samples["cache"]), median(r.samples["hset"])),
		quantile(r.cacheLag, .5), quantile(r.cacheLag, .99), quantile(r.cacheLag, 1), r.lagRate, peak/1024)
}

// printRates is the table of the backlog measurements.
func (r *results) printRates(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "MEASUREMENT\tUNIT\tMEDIAN\tMIN\tMAX\tRUNS\t")
	for _, row := range rows {
		v := r.samples[row.name]
		if len(v) == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.0f\t%d\t\n", row.what, row.unit, median(v), slices.Min(v), slices.Max(v), len(v))
	}
	tw.Flush()
}
