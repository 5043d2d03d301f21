#!/usr/bin/env bash
# Stop what dev-up.sh started, by pid file: the services first, then the servers.
# The broker gets SIGTERM (kfake and SIGKILL do not mix with open transactions).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

for svc in cache-applier storage-applier producer; do
	stop "$DEV/$svc/$svc.pid" TERM
done
stop "$DEV/kafka/kafka.pid" TERM
stop "$DEV/wan/wan.pid" TERM
stop_redis
stop "$DEV/standby/server.pid" TERM
stop "$DEV/primary/server.pid" TERM
log "dev stack stopped (data kept in $DEV; remove it for a fresh start)"
