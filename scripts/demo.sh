#!/usr/bin/env bash
# The main job on the embedded default: the dev stack, the three services, a
# write workload on the primary, then a consistency report. Exits non-zero
# when anything is inconsistent; leaves everything running to play with.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

export LOCKSTEP_CONFIG="${LOCKSTEP_CONFIG:-$ROOT/lockstep.example.yaml}"
"$ROOT/scripts/dev-up.sh" --services

log "writing to the primary for ${DEMO_DURATION:-20s}"
"$DEV/bin/devtool" workload --duration "${DEMO_DURATION:-20s}"
log "an application on lockstep (examples/users): writes on the primary, reads through the standby cache"
status=0
"$DEV/bin/users" || status=$?
log "waiting for the pipeline to drain, then comparing"
"$DEV/bin/devtool" report --wait "${DEMO_WAIT:-2m}" || status=$?

cat <<INFO

The stack and the three services are still running. Try it:
  mariadb -h127.0.0.1 -P$PRIMARY_PORT -uroot -e "UPDATE shop.users SET name='Ada' WHERE id=1"
  mariadb -h127.0.0.1 -P$STANDBY_PORT -uroot -e "SELECT id, name FROM shop.users WHERE id=1"
  $REDIS_CLI HGETALL user:1
  $DEV/bin/users        # the example application (examples/users) again
  kcat -C -b 127.0.0.1:$KAFKA_PORT -t lockstep.standby -o -5 -e -f '%k %s\n'
Service logs: $DEV/producer/producer.log, $DEV/storage-applier/storage-applier.log, $DEV/cache-applier/cache-applier.log
Stop it all:  scripts/dev-down.sh     (rm -rf $DEV for a fresh start)
INFO
exit $status
