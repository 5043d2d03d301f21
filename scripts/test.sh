#!/usr/bin/env bash
# Every test, on real servers: starts private MariaDB primary and standby,
# Redis and a Redis Cluster (on their own ports and data folder, apart from
# the demo's), then runs go test -race over the whole module; then the
# integration tests again against a private MySQL 9.7 primary and standby.
# Kafka is franz-go's kfake, started in-process by each test that needs it.
# Fails if no integration test ran.
set -euo pipefail
OWN_STACK=test
source "$(dirname "$0")/lib.sh"

# The tests configure every address themselves.
unset LOCKSTEP_KAFKA_BROKERS LOCKSTEP_PRIMARY_ADDRESS LOCKSTEP_STANDBY_ADDRESS LOCKSTEP_REDIS_ADDRESS LOCKSTEP_REDIS_CLUSTER
ensure_packages docker-compose pt-online-schema-change:percona-toolkit promtool:prometheus
command -v go >/dev/null || die "Go is not installed (want go 1.26 at /usr/local/go)"
mkdir -p "$DEV"

# The servers this run starts are stopped when it ends, however it ends;
# those already running (kept up for quick go test runs) are left so.
running() { find "$DEV" -name '*.pid' 2>/dev/null | while read -r f; do alive "$f" && echo "$f"; done; true; }
before="$(running)"
stop_started() {
	local f
	for f in $(running); do
		grep -qxF "$f" <<<"$before" || stop "$f" TERM
	done
}
trap stop_started EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
start_primary
start_standby
REDIS_MODE=single start_redis
# and a Redis Cluster (3 masters, 3 replicas) for the cluster tests
(REDIS_MODE=cluster; REDIS_PORT="$CLUSTER_PORT"; start_redis)

export LOCKSTEP_TEST_PRIMARY="127.0.0.1:$PRIMARY_PORT"
export LOCKSTEP_TEST_STANDBY="127.0.0.1:$STANDBY_PORT"
export LOCKSTEP_TEST_REDIS="127.0.0.1:$REDIS_PORT"
export LOCKSTEP_TEST_REDIS_CLUSTER="$(cluster_seeds "$CLUSTER_PORT")"
export LOCKSTEP_TEST_REQUIRE=1
export LOCKSTEP_TEST_RAN_FILE="$DEV/integration-tests-ran"
rm -f "$LOCKSTEP_TEST_RAN_FILE"

# A database server that died under the tests (a crash, not a test's own
# kill: those are of servers the test started) takes every later test with
# it; its error log says why, and CI keeps only what is printed.
died() {
	local f
	for f in $(find "$1" -maxdepth 3 -name server.pid); do
		alive "$f" && continue
		log "the server in $(dirname "$f") is not running; the end of its error log:"
		tail -n 40 "$(dirname "$f")/error.log" >&2 || true
	done
}

# go test -v for the pass/fail count: count OUTCOME LOG counts a log's
# tests that ended so (PASS, FAIL); the screen gets results and failure
# lines only (shown); skipped lists the tests of what only the other
# flavour has, which skip saying so.
count() { grep -cE "^\s*--- $1" "$2" || true; }
shown() { grep -E '^(ok|FAIL|---|panic:|\s+\S+_test\.go:[0-9]+:)'; }
skipped() { grep -E '_test\.go:[0-9]+: .* only, the primary is' "$1" | sed 's/^ */  skipped: /' >&2 || true; }

cd "$ROOT"
go vet ./...
# -parallel: the e2e tests that mostly wait on timeouts run all at once
# (e2e/doc.go); every other test runs alone.
parallel=3
set +e
go test -race -count=1 -timeout 20m -parallel "$parallel" -v "$@" ./... 2>&1 | tee "$DEV/go-test.log" | shown
status=${PIPESTATUS[0]}
set -e
passed=$(count PASS "$DEV/go-test.log")
failed=$(count FAIL "$DEV/go-test.log")
skipped "$DEV/go-test.log"
if [ "$status" -ne 0 ]; then
	log "go test failed; the whole output is in $DEV/go-test.log"
	died "$DEV"
fi
ran=0
[ -f "$LOCKSTEP_TEST_RAN_FILE" ] && ran=$(wc -l <"$LOCKSTEP_TEST_RAN_FILE")
log "integration tests that ran against the real servers: $ran"
if [ "$status" -eq 0 ] && [ "$ran" -eq 0 ]; then
	die "no integration test ran"
fi
if [ "$status" -ne 0 ]; then
	echo "tests: $passed passed, $((failed > 0 ? failed : 1)) failed"
	exit "$status"
fi

# The integration tests again against MySQL 9.7 (LOCKSTEP_TEST_MYSQL=0 leaves
# them out): its own primary and standby, from the private root lib.sh
# builds once, and the packages that talk to them, without -race (the
# MariaDB run above has it). A test of what only MariaDB has says so and
# skips; those are listed. The 2-minute WAN cut and the real Prometheus
# (nothing in it is of a flavour) run in the MariaDB run only.
if [ "${LOCKSTEP_TEST_MYSQL:-1}" != 0 ]; then
	mysql_primary="$EXTRA_PORT" mysql_standby=$((EXTRA_PORT + 1))
	log "MySQL: primary and standby on 127.0.0.1:$mysql_primary and :$mysql_standby"
	(FLAVOR=mysql; DEV="$DEV/mysql"; PRIMARY_PORT="$mysql_primary"; STANDBY_PORT="$mysql_standby"
		mkdir -p "$DEV" && start_primary && start_standby) || die "the MySQL servers did not start"
	set +e
	LOCKSTEP_FLAVOR=mysql LOCKSTEP_TEST_PRIMARY="127.0.0.1:$mysql_primary" LOCKSTEP_TEST_STANDBY="127.0.0.1:$mysql_standby" \
		go test -count=1 -timeout 20m -parallel "$parallel" -v -skip 'TestWANLinkCutUnderLoad/2m0s|TestPrometheusAlertsOnAStoppedService' "$@" ./e2e ./producer ./storage-applier ./internal/... ./cache/... ./cache-applier/... 2>&1 |
		tee "$DEV/go-test-mysql.log" | shown
	status=${PIPESTATUS[0]}
	set -e
	on_mysql=$(count PASS "$DEV/go-test-mysql.log")
	passed=$((passed + on_mysql))
	failed=$(count FAIL "$DEV/go-test-mysql.log")
	log "on MySQL: $on_mysql passed, $failed failed"
	skipped "$DEV/go-test-mysql.log"
	if [ "$status" -ne 0 ]; then
		log "go test on MySQL failed; the whole output is in $DEV/go-test-mysql.log"
		died "$DEV"
		echo "tests: $passed passed, $((failed > 0 ? failed : 1)) failed"
		exit "$status"
	fi
	# Across flavours, what a mix supports (README, MySQL and MariaDB): the
	# pipeline's row changes from a MySQL primary to the MariaDB standby,
	# and from the MariaDB primary to the MySQL standby.
	for pair in "$mysql_primary $STANDBY_PORT" "$PRIMARY_PORT $mysql_standby"; do
		read -r p s <<<"$pair"
		log "across flavours: primary 127.0.0.1:$p, standby 127.0.0.1:$s"
		if LOCKSTEP_TEST_PRIMARY="127.0.0.1:$p" LOCKSTEP_TEST_STANDBY="127.0.0.1:$s" go test -count=1 -timeout 5m -v \
			-run '^(TestRowChangesReachStandbyAndCache|TestTransactionAppliedAtomically)$' ./e2e >"$DEV/go-test-across-$p.log" 2>&1; then
			passed=$((passed + $(count PASS "$DEV/go-test-across-$p.log")))
		else
			grep -E '^(--- FAIL|\s+\S+_test\.go:[0-9]+:)' "$DEV/go-test-across-$p.log" | head -20
			echo "tests: $passed passed, 1 failed"
			exit 1
		fi
	done
fi

# The fuzz targets, briefly: records on the topics are untrusted input.
# Each runs a count of inputs (about 10 s here), not a time: Go 1.26's
# fuzzer can fail a timed run with "context deadline exceeded" as the time
# ends on a loaded machine (golang/go#75804), with no failing input.
for target in schemas:FuzzDecode:100000x schemas:FuzzFastDecodeIsTheDecoder:100000x storage-applier:FuzzRowStatement:20000x; do
	IFS=: read -r pkg name budget <<<"$target"
	budget="${LOCKSTEP_FUZZ_TIME:-$budget}"
	log "fuzz $name in ./$pkg for $budget"
	if go test -run '^$' -fuzz "^$name\$" -fuzztime "$budget" "./$pkg" >"$DEV/fuzz-$name.log" 2>&1; then
		passed=$((passed + 1))
	else
		tail -20 "$DEV/fuzz-$name.log"
		echo "tests: $passed passed, 1 failed"
		exit 1
	fi
done

# A short chaos run: every fault kind once, fixed seed.
# LOCKSTEP_CHAOS_CYCLES=0 skips it; a longer run: scripts/chaos.sh --cycles 100.
cycles="${LOCKSTEP_CHAOS_CYCLES:-17}"
if [ "$cycles" -gt 0 ]; then
	log "chaos run: $cycles fault cycles, seed 7"
	if "$ROOT/scripts/chaos.sh" --seed 7 --cycles "$cycles" --duration 60s; then
		passed=$((passed + 1))
	else
		echo "tests: $passed passed, 1 failed"
		exit 1
	fi
	if [ "${LOCKSTEP_TEST_MYSQL:-1}" != 0 ]; then
		# The faults whose handling depends on the database's flavour:
		# the binlog stream, the servers' crashes, restarts and stops, and
		# the reseed from the standby's GTID set after Kafka is lost.
		mysql_kinds=kill9-producer,kill9-storage-applier,kill9-primary,kill9-standby,restart-primary,restart-standby,sigstop-primary,wipe-kafka
		log "chaos run on MySQL: 8 fault cycles ($mysql_kinds), seed 7"
		if LOCKSTEP_FLAVOR=mysql "$ROOT/scripts/chaos.sh" --seed 7 --cycles 8 --duration 30s --kinds "$mysql_kinds"; then
			passed=$((passed + 1))
		else
			echo "tests: $passed passed, 1 failed"
			exit 1
		fi
	fi
fi
# The benchmark, briefly: a smoke run that checks it still works end to end
# (servers, baselines, every stage, the RESULT line), not its numbers.
log "benchmark smoke run: scripts/bench.sh --quick"
if "$ROOT/scripts/bench.sh" --quick >"$DEV/bench-quick.log" 2>&1 && grep '^RESULT ' "$DEV/bench-quick.log"; then
	passed=$((passed + 1))
else
	tail -20 "$DEV/bench-quick.log"
	echo "tests: $passed passed, 1 failed"
	exit 1
fi
echo "tests: $passed passed, 0 failed"
