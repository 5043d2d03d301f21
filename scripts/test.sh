#!/usr/bin/env bash
# Every test, on real servers: starts private MariaDB primary and standby and
# Redis (on their own ports and data folder, apart from the demo's), then
# runs go test -race over the whole module. Kafka is franz-go's kfake,
# started in-process by each test that needs it. Fails if no integration
# test ran.
set -euo pipefail
export LOCKSTEP_DEV_DIR="${LOCKSTEP_DEV_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.dev/test}"
export LOCKSTEP_PRIMARY_PORT="${LOCKSTEP_TEST_PRIMARY_PORT:-13307}"
export LOCKSTEP_STANDBY_PORT="${LOCKSTEP_TEST_STANDBY_PORT:-13308}"
export LOCKSTEP_REDIS_PORT="${LOCKSTEP_TEST_REDIS_PORT:-16380}"
source "$(dirname "$0")/lib.sh"

# The tests configure every address themselves.
unset LOCKSTEP_KAFKA_BROKERS LOCKSTEP_PRIMARY_ADDRESS LOCKSTEP_STANDBY_ADDRESS LOCKSTEP_REDIS_ADDRESS
ensure_packages docker-compose
command -v go >/dev/null || die "Go is not installed (want go 1.26 at /usr/local/go)"
mkdir -p "$DEV"
start_primary
start_standby
start_redis

export LOCKSTEP_TEST_PRIMARY="127.0.0.1:$PRIMARY_PORT"
export LOCKSTEP_TEST_STANDBY="127.0.0.1:$STANDBY_PORT"
export LOCKSTEP_TEST_REDIS="127.0.0.1:$REDIS_PORT"
export LOCKSTEP_TEST_REQUIRE=1
export LOCKSTEP_TEST_RAN_FILE="$DEV/integration-tests-ran"
rm -f "$LOCKSTEP_TEST_RAN_FILE"

cd "$ROOT"
go vet ./...
status=0
go test -race -count=1 -timeout 20m "$@" ./... || status=$?
ran=0
[ -f "$LOCKSTEP_TEST_RAN_FILE" ] && ran=$(wc -l <"$LOCKSTEP_TEST_RAN_FILE")
log "integration tests that ran against the real servers: $ran"
if [ "$status" -eq 0 ] && [ "$ran" -eq 0 ]; then
	die "no integration test ran"
fi
exit "$status"
