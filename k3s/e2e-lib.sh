# shellcheck shell=bash
# Shared helpers of test-scale-up.sh and test-scale-down.sh (sourced, not run).
# They drive a real SmartScale cluster through kubectl: the current kubectl context must
# reach its API (docs/deploy.md: Session Manager port forwarding of 6443 from the master).

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${NAMESPACE:=demo}"
: "${POLL_SECONDS:=15}"
: "${K6_IMAGE:=grafana/k6:1.0.0}"
: "${DEMO_IMAGE:=}" # your pushed build of k3s/demo-app (docs/deploy.md); empty keeps the manifest's

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() {
  log "FAIL: $*"
  exit 1
}

need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "$c is required"
  done
}

# ready_workers prints the number of Ready nodes without the control-plane role.
ready_workers() {
  kubectl get nodes -l '!node-role.kubernetes.io/control-plane' \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    grep -c '^True$' || true
}

# cordoned_workers prints the names of unschedulable (draining) workers.
cordoned_workers() {
  kubectl get nodes -l '!node-role.kubernetes.io/control-plane' \
    -o jsonpath='{range .items[?(@.spec.unschedulable==true)]}{.metadata.name}{" "}{end}'
}

pending_pods() {
  kubectl get pods -A --field-selector=status.phase=Pending -o name | wc -l | tr -d ' '
}

available_replicas() {
  local n
  n=$(kubectl -n "$NAMESPACE" get deployment demo-app -o jsonpath='{.status.availableReplicas}' 2>/dev/null || true)
  echo "${n:-0}"
}

# deploy_demo applies the demo app and waits for it to be available.
deploy_demo() {
  kubectl apply -f "$REPO_ROOT/k3s/demo-app/manifests/namespace.yaml"
  kubectl apply -f "$REPO_ROOT/k3s/demo-app/manifests/"
  if [ -n "$DEMO_IMAGE" ]; then
    kubectl -n "$NAMESPACE" set image deployment/demo-app "demo-app=$DEMO_IMAGE"
  fi
  kubectl -n "$NAMESPACE" rollout status deployment/demo-app --timeout=300s ||
    die "the demo app did not become available"
}

# start_load RATE DURATION CPU_MS: runs k6 in the cluster (on the master, so that the load
# generator's own CPU does not count on the workers) against the demo Service with a
# ramping-arrival-rate of RATE requests/s held for DURATION.
start_load() {
  local rate=$1 duration=$2 cpu_ms=$3 cfg
  cfg=$(mktemp)
  cat >"$cfg" <<JSON
{
  "scenarios": {
    "e2e": {
      "executor": "ramping-arrival-rate",
      "startRate": 20,
      "timeUnit": "1s",
      "preAllocatedVUs": 100,
      "maxVUs": 1000,
      "stages": [
        { "duration": "1m", "target": $rate },
        { "duration": "$duration", "target": $rate }
      ]
    }
  },
  "smartscale": { "app": { "cpu_ms_per_request": $cpu_ms } }
}
JSON
  kubectl -n "$NAMESPACE" delete job smartscale-k6 --ignore-not-found --wait=true
  kubectl -n "$NAMESPACE" create configmap smartscale-k6 \
    --from-file=load-test.js="$REPO_ROOT/scenarios/load-test.js" --from-file=e2e.json="$cfg" \
    --dry-run=client -o yaml | kubectl apply -f -
  rm -f "$cfg"
  kubectl apply -f - <<YAML
apiVersion: batch/v1
kind: Job
metadata:
  name: smartscale-k6
  namespace: $NAMESPACE
  labels:
    app.kubernetes.io/name: smartscale-k6
spec:
  backoffLimit: 0
  template:
    metadata:
      labels:
        app.kubernetes.io/name: smartscale-k6
    spec:
      restartPolicy: Never
      nodeSelector:
        node-role.kubernetes.io/control-plane: "true"
      tolerations:
        - key: node-role.kubernetes.io/control-plane
          operator: Exists
          effect: NoSchedule
      containers:
        - name: k6
          image: $K6_IMAGE
          args: ["run", "--config", "/scripts/e2e.json", "/scripts/load-test.js"]
          env:
            - name: BASE_URL
              value: http://demo-app.$NAMESPACE.svc
            - name: SCENARIO_FILE
              value: e2e.json
          resources:
            requests:
              cpu: 250m
              memory: 256Mi
          volumeMounts:
            - name: scripts
              mountPath: /scripts
      volumes:
        - name: scripts
          configMap:
            name: smartscale-k6
YAML
}

stop_load() {
  kubectl -n "$NAMESPACE" delete job smartscale-k6 --ignore-not-found --wait=false >/dev/null 2>&1 || true
}
