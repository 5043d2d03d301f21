#!/usr/bin/env bash
# Fault injection on a private stack (the chaos row of scripts/lib.sh's stack table):
#   scripts/chaos.sh [--seed N] [--cycles N] [--duration 2m] [--kinds kill9-producer,wipe-kafka,...]
# Exits non-zero on any dirty read, regression, inconsistency or duplicate.
set -euo pipefail
OWN_STACK=chaos
source "$(dirname "$0")/lib.sh"
ensure_packages
mkdir -p "$DEV/bin"
(cd "$ROOT" && go build -o "$DEV/bin/chaos" ./scripts/chaos) || die "build the chaos harness"
exec "$DEV/bin/chaos" --root "$ROOT" --dev "$DEV" "$@"
