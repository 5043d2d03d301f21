#!/usr/bin/env bash
# Start the private dev stack under .dev/: MariaDB (LOCKSTEP_FLAVOR=mysql:
# MySQL 9.7) primary and standby, Redis (LOCKSTEP_REDIS=cluster: a Redis
# Cluster of 3 masters and 3 replicas; LOCKSTEP_WAN=50ms: two sites, the
# producer reading the binlog across a simulated WAN link),
# the embedded Kafka broker, and with --services the three lockstep services.
# Idempotent: only what is not running is started. LOCKSTEP_PRODUCER_SET
# (space-separated key=value) gives the producer settings of its own, for a
# producer at another site than the rest (e.g. kafka.connect_via).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

services=0
for arg in "$@"; do
	case "$arg" in
	--services) services=1 ;;
	*) die "unknown argument $arg (usage: dev-up.sh [--services])" ;;
	esac
done

# What the stack in $DEV is: "only what is not running is started" must not
# leave a stack of another shape running under the one asked for (a demo on
# MySQL that ran on the MariaDB still up, services on the single Redis
# while the cluster was asked for).
shape="flavor=$FLAVOR redis=$REDIS_MODE wan=${WAN_SHAPE:-none}"
if [ -f "$DEV/shape" ] && [ "$(cat "$DEV/shape")" != "$shape" ]; then
	was="$(cat "$DEV/shape")"
	if [ "${was%% *}" != "flavor=$FLAVOR" ]; then
		die "$DEV holds a stack of $was, and $shape is asked for: its databases are the other server's; scripts/dev-down.sh, then rm -rf $DEV for a fresh start"
	fi
	for pid in "$DEV"/*/*.pid "$DEV"/redis-cluster/*/*.pid; do
		if alive "$pid"; then
			die "the dev stack runs with $was, and $shape is asked for: scripts/dev-down.sh first (it keeps the data), then this again"
		fi
	done
fi
ensure_packages
mkdir -p "$DEV"
echo "$shape" >"$DEV/shape"
start_primary
start_standby
start_redis
build_tools
start_kafka
start_wan
if [ -n "$WAN_SHAPE" ]; then
	export LOCKSTEP_PRODUCER_SET="primary.address=127.0.0.1:$WAN_PORT ${LOCKSTEP_PRODUCER_SET:-}"
fi

config="${LOCKSTEP_CONFIG:-$ROOT/lockstep.example.yaml}"

if [ "$services" = 1 ]; then
	for svc in producer storage-applier cache-applier; do
		dir="$DEV/$svc"
		mkdir -p "$dir"
		if alive "$dir/$svc.pid"; then continue; fi
		log "starting $svc (log: $dir/$svc.log)"
		args=(--config "$config")
		# The dev primary is private and new: carry it from its first binlog.
		if [ "$svc" = producer ]; then
			args+=(--from-start)
			for kv in ${LOCKSTEP_PRODUCER_SET:-}; do args+=(--set "$kv"); done
		fi
		nohup "$DEV/bin/$svc" "${args[@]}" >>"$dir/$svc.log" 2>&1 &
		echo $! >"$dir/$svc.pid"
	done
fi

cat <<INFO
lockstep dev stack is up:
  primary $(printf %-9s "$FLAVOR") 127.0.0.1:$PRIMARY_PORT   mariadb -h127.0.0.1 -P$PRIMARY_PORT -uroot
  standby $(printf %-9s "$FLAVOR") 127.0.0.1:$STANDBY_PORT   mariadb -h127.0.0.1 -P$STANDBY_PORT -uroot
  Redis $(printf %-11s "$REDIS_MODE") 127.0.0.1:$REDIS_PORT   $REDIS_CLI
  Kafka (kfake)     127.0.0.1:$KAFKA_PORT   kcat -C -b 127.0.0.1:$KAFKA_PORT -t lockstep.primary -f '%k %s\n'
INFO
if [ -n "$WAN_SHAPE" ]; then
	echo "  WAN link          127.0.0.1:$WAN_PORT -> the primary, $WAN_SHAPE round trip: the producer reads the binlog across it"
fi
if [ "$services" = 1 ]; then
	echo "  services          producer, storage-applier, cache-applier (config $config; logs $DEV/<service>/)"
fi
echo "  stop everything:  scripts/dev-down.sh"
