#!/bin/bash
# End-to-end check of a scale-up on a real SmartScale cluster: deploys the demo app, drives
# it with k6 (in the cluster) well past the workers' capacity, and passes when the number of
# Ready workers grows within TIMEOUT. Needs kubectl with a context on the cluster and a
# deployed stack (docs/deploy.md); it cannot run without AWS.
#
#   RATE=700 CPU_MS=10 DURATION=20m TIMEOUT_MINUTES=15 k3s/test-scale-up.sh
#
# Why 15 minutes: the policy waits for 3 minutes of sustained CPU or pending pods, a tick
# comes every 2 minutes, and a worker takes about 1-3 minutes from launch to Ready.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=e2e-lib.sh
source "$(dirname "$0")/e2e-lib.sh"

: "${RATE:=700}"           # requests/s: the flash-sale peak of scenarios/flash-sale.json
: "${CPU_MS:=10}"          # CPU per request, the simulator's default
: "${DURATION:=20m}"       # how long k6 holds the rate
: "${TIMEOUT_MINUTES:=15}" # bound on the wait for a new Ready worker
: "${KEEP_LOAD:=0}"        # 1: leave k6 running on exit (e.g. to watch the dashboards)

need kubectl
kubectl version >/dev/null 2>&1 || die "kubectl cannot reach the cluster"

before=$(ready_workers)
log "Ready workers before: $before"
deploy_demo
if [ "$KEEP_LOAD" != 1 ]; then
  trap stop_load EXIT
fi
start_load "$RATE" "$DURATION" "$CPU_MS"
log "k6 driving $RATE req/s x ${CPU_MS} ms CPU; waiting up to $TIMEOUT_MINUTES min for a new worker"

deadline=$(($(date +%s) + TIMEOUT_MINUTES * 60))
while [ "$(date +%s)" -lt "$deadline" ]; do
  now=$(ready_workers)
  log "workers ready=$now pending_pods=$(pending_pods) demo_available=$(available_replicas)"
  if [ "$now" -gt "$before" ]; then
    log "PASS: workers went from $before to $now"
    exit 0
  fi
  sleep "$POLL_SECONDS"
done
die "no new Ready worker within $TIMEOUT_MINUTES minutes (still $(ready_workers)); see the Lambda's log"
