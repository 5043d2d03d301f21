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
	samples map[string][]float64
	rssKB   map[string]int64

	// the lag phase: each probe's time to the anchor replica, lockstep's
	// standby and its cache, and the CPU seconds each process spent per
	// 1,000 primary transactions
	replicaLag, standbyLag, cacheLag []time.Duration
	probesPlanned                    int
	lagRate                          float64 // transactions/s the primary committed
	lagTime                          time.Duration
	cpuPer1000                       map[string]float64

	// the floor phase: the same, with the followers (floor.go) beside
	floorTime    time.Duration
	floorRate    float64
	floorPer1000 map[string]float64

	catchUp, nativeCatchUp time.Duration

	wan []wanResult // with --wan
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
	{"hset_cluster", "plain pipelined HSET/DEL on a Redis Cluster", "rows/s"},
	{"cache_cluster", "lockstep cache-applier on a Redis Cluster", "rows/s"},
	{"cpu_decode", "  CPU of the raw decode", "µs/row"},
	{"cpu_decode_primary", "  CPU of the primary under the raw decode", "µs/row"},
	{"cpu_producer", "  CPU of the producer", "µs/row"},
	{"cpu_producer_primary", "  CPU of the primary under the producer", "µs/row"},
	{"cpu_producer_broker", "  CPU of the broker under the producer", "µs/row"},
	{"cpu_native", "  CPU of the serial replica server", "s/1k txn"},
	{"cpu_standby", "  CPU of lockstep's standby server", "s/1k txn"},
	{"cpu_apply", "  CPU of the storage-applier", "s/1k txn"},
	{"cpu_apply_broker", "  CPU of the broker under the storage-applier", "s/1k txn"},
	{"cpu_cache", "  CPU of the cache-applier", "µs/row"},
	{"cpu_cache_redis", "  CPU of Redis under the cache-applier", "µs/row"},
	{"cpu_cache_broker", "  CPU of the broker under the cache-applier", "µs/row"},
	{"cpu_hset", "  CPU of the HSET client", "µs/row"},
	{"cpu_hset_redis", "  CPU of Redis under HSET", "µs/row"},
}

func (r *results) print(w io.Writer, o options) {
	if len(r.wan) > 0 {
		r.printWAN(w, o)
		return
	}
	if len(r.samples) > 0 {
		r.printRates(w)
	}
	fmt.Fprintf(w, "\nlag over %s at %.0f txn/s committed (%d requested, 4 threads), %d probes of %d planned (one per %s; one not arrived after %s counts as that):\n",
		r.lagTime.Round(time.Second), r.lagRate, o.lagRate, len(r.cacheLag), r.probesPlanned, probeEvery, probeLimit)
	for _, l := range []struct {
		to string
		d  []time.Duration
	}{{"native serial replica", r.replicaLag}, {"lockstep standby", r.standbyLag}, {"lockstep cache", r.cacheLag}} {
		fmt.Fprintf(w, "  primary commit -> %-21s p50 %5.0f ms  p99 %5.0f ms  max %5.0f ms\n", l.to, quantile(l.d, .5), quantile(l.d, .99), quantile(l.d, 1))
	}
	lockstepCPU := 0.0
	var cpu []string
	for _, name := range append(slices.Clone(services), "standby") {
		lockstepCPU += r.cpuPer1000[name]
		cpu = append(cpu, fmt.Sprintf("%s %.2f", name, r.cpuPer1000[name]))
	}
	fmt.Fprintf(w, "CPU s per 1,000 primary transactions: lockstep %.2f (%s) vs the native replica server %.2f; the broker %.2f beside, not counted\n",
		lockstepCPU, strings.Join(cpu, ", "), r.cpuPer1000["replica"], r.cpuPer1000["broker"])
	f := r.floorPer1000
	floor := f["standby"] + f["binlog"] + f["primary-log"] + f["standby-log"]
	fmt.Fprintf(w, "the floor, over %s at %.0f txn/s beside the pipeline: receiving alone costs, per 1,000 primary transactions, go-mysql the binlog %.3f, franz-go the primary log %.3f and the standby log %.3f; with the standby server's %.3f, %.3f s against the native replica server's %.3f in the same phase (lockstep's services there: producer %.2f, storage-applier %.2f, cache-applier %.2f)\n",
		r.floorTime.Round(time.Second), r.floorRate, f["binlog"], f["primary-log"], f["standby-log"], f["standby"], floor, f["replica"],
		f["producer"], f["storage-applier"], f["cache-applier"])
	fmt.Fprintf(w, "catch-up after %s stopped under the same load, until under 1 s behind: lockstep standby %.1f s, native replica %.1f s\n",
		o.stopFor, r.catchUp.Seconds(), r.nativeCatchUp.Seconds())
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
	applyVsNative := ratio(median(r.samples["apply"]), best)
	if best > 0 {
		fmt.Fprintf(w, "apply vs the best native mode (%s): %.2f\n", bestMode, applyVsNative)
	}
	nativeP99 := quantile(r.replicaLag, .99)
	clusterRatio := "" // measured with --redis-cluster only
	if len(r.samples["cache_cluster"]) > 0 {
		clusterRatio = fmt.Sprintf(" cache_cluster_vs_hset=%.2f", ratio(median(r.samples["cache_cluster"]), median(r.samples["hset_cluster"])))
	}
	fmt.Fprintf(w, "\nRESULT apply_vs_native=%.2f producer_rows_per_s=%.0f producer_vs_decode=%.2f cache_vs_hset=%.2f lag_p50_ms=%.0f lag_p99_ms=%.0f lag_max_ms=%.0f native_lag_p99_ms=%.0f lag_vs_native=%.2f lag_txn_per_s=%.0f catchup_s=%.1f native_catchup_s=%.1f catchup_vs_native=%.2f cpu_vs_native=%.2f floor_cpu_vs_native=%.2f peak_rss_mb=%d%s\n",
		applyVsNative, median(r.samples["producer"]),
		ratio(median(r.samples["producer"]), median(r.samples["decode"])), ratio(median(r.samples["cache"]), median(r.samples["hset"])),
		quantile(r.cacheLag, .5), quantile(r.cacheLag, .99), quantile(r.cacheLag, 1), nativeP99, ratio(quantile(r.cacheLag, .99), nativeP99), r.lagRate,
		r.catchUp.Seconds(), r.nativeCatchUp.Seconds(), ratio(r.catchUp.Seconds(), r.nativeCatchUp.Seconds()),
		ratio(lockstepCPU, r.cpuPer1000["replica"]), ratio(floor, f["replica"]), peak/1024, clusterRatio)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
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
		f := "%s\t%s\t%.0f\t%.0f\t%.0f\t%d\t\n"
		switch row.unit {
		case "s/1k txn":
			f = "%s\t%s\t%.3f\t%.3f\t%.3f\t%d\t\n"
		case "µs/row":
			f = "%s\t%s\t%.2f\t%.2f\t%.2f\t%d\t\n"
		}
		fmt.Fprintf(tw, f, row.what, row.unit, median(v), slices.Min(v), slices.Max(v), len(v))
	}
	tw.Flush()
}

// printWAN is the WAN phase's table and RESULT line: each placement at
// each RTT against RTT 0 (the LAN) in the same run.
func (r *results) printWAN(w io.Writer, o options) {
	fmt.Fprintf(w, "\nacross a simulated WAN (toxiproxy; jitter ±10%% of the RTT; %d KB/s each way): a %d-transaction backlog primary -> cache, then %d txn/s requested for %s\n",
		o.wanRate/1000, o.wanBacklog, o.wanLagRate, o.wanLagTime)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PLACEMENT\tRTT\tBACKLOG TXN/S\tVS LAN\tKAFKA TXN/S\tKEPT TXN/S\tSTANDBY P99 MS\tCACHE P50 MS\tCACHE P99 MS\tNATIVE P50 MS\tNATIVE P99 MS\tPROBES\t")
	lan := map[string]float64{}
	for _, x := range r.wan {
		if x.shape.RTT == 0 {
			lan[x.placement] = x.txnPerS
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.2f\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%d/%d\t\n", x.placement, x.shape.RTT, x.txnPerS, ratio(x.txnPerS, lan[x.placement]),
			x.kafkaTxnPerS, x.lagRate, quantile(x.standbyLag, .99), quantile(x.cacheLag, .5), quantile(x.cacheLag, .99), quantile(x.replicaLag, .5), quantile(x.replicaLag, .99), x.probes, x.probesPlanned)
	}
	tw.Flush()
	for _, p := range o.placements {
		fmt.Fprintf(w, "  %s: %s\n", p.name, p.what)
	}
	// The RESULT line: the first placement at the last RTT asked.
	var x wanResult
	for _, c := range r.wan {
		if c.placement == o.placements[0].name {
			x = c
		}
	}
	fmt.Fprintf(w, "\nRESULT wan_placement=%s wan_rtt_ms=%d wan_txn_per_s=%.0f wan_vs_lan=%.2f wan_lag_p99_ms=%.0f wan_kafka_txn_per_s=%.1f native_wan_lag_p99_ms=%.0f\n",
		x.placement, x.shape.RTT.Milliseconds(), x.txnPerS, ratio(x.txnPerS, lan[x.placement]), quantile(x.cacheLag, .99), x.kafkaTxnPerS, quantile(x.replicaLag, .99))
}
