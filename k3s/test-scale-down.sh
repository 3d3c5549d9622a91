#!/bin/bash
# End-to-end check of a scale-down on a real SmartScale cluster: with the load stopped (run
# it after test-scale-up.sh), passes when a worker is removed within TIMEOUT, the count never
# drops below MIN_WORKERS, and the demo app keeps at least one available replica while the
# node is drained (its PodDisruptionBudget). Needs kubectl with a context on the cluster; it
# cannot run without AWS.
#
#   MIN_WORKERS=2 TIMEOUT_MINUTES=35 k3s/test-scale-down.sh
#
# Why 35 minutes: the HPA takes 5 minutes (its stabilization window) to shrink the demo app,
# the policy wants 10 minutes of CPU below 30%, a scale-up cooldown of 5 minutes may still
# run, and a drain is bounded by 5 minutes.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=e2e-lib.sh
source "$(dirname "$0")/e2e-lib.sh"

: "${MIN_WORKERS:=2}"      # the stack's smartscale:minWorkers
: "${TIMEOUT_MINUTES:=35}" # bound on the wait for a worker to go

need kubectl
kubectl version >/dev/null 2>&1 || die "kubectl cannot reach the cluster"
stop_load

before=$(ready_workers)
log "Ready workers before: $before (minimum $MIN_WORKERS)"
[ "$before" -gt "$MIN_WORKERS" ] ||
  die "only $before workers: nothing to scale down (run test-scale-up.sh first)"

saw_cordon=""
deadline=$(($(date +%s) + TIMEOUT_MINUTES * 60))
while [ "$(date +%s)" -lt "$deadline" ]; do
  now=$(ready_workers)
  cordoned=$(cordoned_workers)
  avail=$(available_replicas)
  log "workers ready=$now cordoned=[${cordoned}] demo_available=$avail"
  [ -z "$cordoned" ] || saw_cordon=$cordoned
  [ "$avail" -ge 1 ] || die "the demo app had no available replica during the scale-down"
  [ "$now" -ge "$MIN_WORKERS" ] || die "workers fell to $now, below the minimum $MIN_WORKERS"
  if [ "$now" -lt "$before" ]; then
    if [ -n "$saw_cordon" ]; then
      log "PASS: workers went from $before to $now; drained first: $saw_cordon"
    else
      log "PASS: workers went from $before to $now (the cordon fell between two polls)"
    fi
    exit 0
  fi
  sleep "$POLL_SECONDS"
done
die "no worker removed within $TIMEOUT_MINUTES minutes (still $(ready_workers))"
