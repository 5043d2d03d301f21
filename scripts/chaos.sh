#!/usr/bin/env bash
# Fault injection on a private stack (.dev/chaos, ports 23307/23308/26380/29092):
#   scripts/chaos.sh [--seed N] [--cycles N] [--duration 2m]
# Exits non-zero on any dirty read, regression, inconsistency or duplicate.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
unset LOCKSTEP_KAFKA_BROKERS LOCKSTEP_PRIMARY_ADDRESS LOCKSTEP_STANDBY_ADDRESS LOCKSTEP_REDIS_ADDRESS
ensure_packages
mkdir -p "$DEV/bin"
(cd "$ROOT" && go build -o "$DEV/bin/chaos" ./scripts/chaos) || die "build the chaos harness"
exec "$DEV/bin/chaos" --root "$ROOT" "$@"
