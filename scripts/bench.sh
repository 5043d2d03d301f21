#!/usr/bin/env bash
# Speed, side by side with the baselines, on a private stack (the bench row
# of scripts/lib.sh's stack table): a sysbench oltp_write_only backlog applied
# by MariaDB's own replication (three replicas: serial, conservative and
# optimistic parallel, each applying the same backlog) and by lockstep; the producer
# against go-mysql's raw decode; the cache-applier against plain pipelined
# HSET, on a single Redis and on a Redis Cluster; the end-to-end lag at a steady rate; peak memory.
#   scripts/bench.sh [--quick] [--reps N] [--backlog N] [--lag-time 5m]
# Prints a table (median, min, max) and one RESULT line.
# Across a simulated WAN (toxiproxy, in the benchmark's process) instead:
#   scripts/bench.sh --wan 50ms [--placement binlog|kafka|consume|all] [--wan-rate 10MB]
# the pipeline's throughput and lag at RTT 0 and at each RTT asked.
set -euo pipefail
# Its own folder and ports always: the run starts by wiping them.
OWN_STACK=bench
export LOCKSTEP_REDIS=single # and the cluster on CLUSTER_PORT
MODES=(serial conservative optimistic)
source "$(dirname "$0")/lib.sh"
REPLICA_PORT="$EXTRA_PORT" # and the next two
# The baselines are MariaDB replicas of a MariaDB primary.
[ "$FLAVOR" = mariadb ] || die "the benchmark measures against MariaDB's own replication: run it without LOCKSTEP_FLAVOR=$FLAVOR"

ensure_packages
down() {
	for svc in cache-applier storage-applier producer; do stop "$DEV/$svc/$svc.pid" TERM; done
	stop "$DEV/kafka/kafka.pid" TERM
	stop_redis
	for db in "${MODES[@]/#/replica-}" standby primary; do stop "$DEV/$db/server.pid" TERM; done
}
# A fresh stack every run: a previous run's data must not count.
down
rm -rf "$DEV"
mkdir -p "$DEV"
trap down EXIT
start_primary
start_standby
for i in 0 1 2; do
	start_mariadb "replica-${MODES[$i]}" $((REPLICA_PORT + i)) $((3 + i)) --skip-log-bin
done
start_redis
# and a Redis Cluster (3 masters, 3 replicas) to measure the cache-applier on
(REDIS_MODE=cluster; REDIS_PORT="$CLUSTER_PORT"; start_redis)
build_tools
start_kafka
(cd "$ROOT" && go build -o "$DEV/bin/bench" ./scripts/bench) || die "build the benchmark"
"$DEV/bin/bench" --dev "$DEV" --config "$ROOT/scripts/bench.yaml" --replica-port "$REPLICA_PORT" \
	--redis-cluster "$(cluster_seeds "$CLUSTER_PORT")" "$@"
