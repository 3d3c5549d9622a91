#!/bin/bash
# SmartScale master setup: installs the K3s server, publishes the agent token to Secrets
# Manager for the workers, taints the master against application workloads, deploys the
# monitoring stack (Prometheus on NodePort 30090, node-exporter, kube-state-metrics) and the
# autoscaler's RBAC, and publishes a kubeconfig of the autoscaler's service account for the
# Lambda.
#
# Run as root on the master. The deploy program runs it from the master's user data with:
#   SMARTSCALE_CLUSTER_ID       cluster id (tag smartscale.io/cluster)
#   SMARTSCALE_TOKEN_SECRET_ID  secret that receives the K3s agent token (workers read it)
#   SMARTSCALE_KUBECONFIG_SECRET_ID  secret that receives the autoscaler's kubeconfig (Lambda reads it)
#   SMARTSCALE_LOG_GROUP        CloudWatch Logs group for this script's log (optional)
#   SMARTSCALE_ALERT_TOPIC_ARN  SNS topic Alertmanager publishes scale-up alerts to (optional:
#                               without it Alertmanager is not installed and only the schedule ticks)
#   K3S_VERSION                 K3s release, the same as the workers'
#   MANIFEST_DIR                manifests to apply (default: manifests/ beside this script)
#
# Idempotent: the agent token is generated once and kept in /etc/rancher/k3s/agent-token;
# K3s is (re)installed only when it is missing or at another version; manifests go through
# K3s's auto-deploy directory (applied on every change); secrets are put with a client
# request token derived from their content, so a re-run with the same values is a no-op.
set -euo pipefail

: "${SMARTSCALE_CLUSTER_ID:?SMARTSCALE_CLUSTER_ID is not set}"
: "${SMARTSCALE_TOKEN_SECRET_ID:?SMARTSCALE_TOKEN_SECRET_ID is not set}"
: "${SMARTSCALE_KUBECONFIG_SECRET_ID:=}"
: "${SMARTSCALE_LOG_GROUP:=/smartscale/${SMARTSCALE_CLUSTER_ID}/nodes}"
: "${SMARTSCALE_ALERT_TOPIC_ARN:=}"
: "${K3S_VERSION:=v1.33.1+k3s1}"
: "${MANIFEST_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/manifests}"
# Paths, overridable for k3s/master_setup_test.go.
LOG_FILE=${SMARTSCALE_MASTER_LOG:-/var/log/smartscale-master.log}
K3S_ETC=${SMARTSCALE_K3S_ETC:-/etc/rancher/k3s}
AUTODEPLOY=${SMARTSCALE_AUTODEPLOY_DIR:-/var/lib/rancher/k3s/server/manifests}
K3S_BIN=${SMARTSCALE_K3S_BIN:-/usr/local/bin/k3s}
AGENT_TOKEN_FILE=$K3S_ETC/agent-token
K3S_CONFIG=$K3S_ETC/config.yaml
KUBECTL=("$K3S_BIN" kubectl)

exec > >(tee -a "$LOG_FILE") 2>&1
log() { printf '%s smartscale-master: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

IMDS=http://169.254.169.254/latest
imds_token=""
imds() {
  if [ -z "$imds_token" ]; then
    imds_token=$(curl -sSf --retry 5 --retry-connrefused --max-time 5 -X PUT "$IMDS/api/token" \
      -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600')
  fi
  curl -sSf --retry 5 --retry-connrefused --max-time 5 \
    -H "X-aws-ec2-metadata-token: $imds_token" "$IMDS/meta-data/$1"
}

instance_id=""
region=""
ship_logs() {
  [ -n "$instance_id" ] && [ -n "$region" ] && command -v python3 >/dev/null 2>&1 || return 0
  local events
  events=$(mktemp)
  python3 - "$LOG_FILE" >"$events" <<'PY' || return 0
import json, sys, time
now = int(time.time() * 1000)
lines = open(sys.argv[1], errors="replace").read().splitlines()[-5000:]
print(json.dumps([{"timestamp": now, "message": l or " "} for l in lines]))
PY
  aws logs create-log-stream --region "$region" --log-group-name "$SMARTSCALE_LOG_GROUP" \
    --log-stream-name "master-$instance_id" >/dev/null 2>&1 || true
  aws logs put-log-events --region "$region" --log-group-name "$SMARTSCALE_LOG_GROUP" \
    --log-stream-name "master-$instance_id" --log-events "file://$events" >/dev/null 2>&1 || true
  rm -f "$events"
}
on_exit() {
  local rc=$?
  [ "$rc" -eq 0 ] || log "FAILED (exit $rc): master setup of $SMARTSCALE_CLUSTER_ID incomplete; see $LOG_FILE"
  ship_logs
  exit "$rc"
}
trap on_exit EXIT
trap 'log "error at line $LINENO: $BASH_COMMAND"' ERR

# retry N CMD...: runs CMD up to N times, 10 s apart.
retry() {
  local n=$1
  shift
  local i
  for i in $(seq 1 "$n"); do
    if "$@"; then return 0; fi
    [ "$i" -lt "$n" ] && sleep 10
  done
  return 1
}

# put_secret ID FILE: stores FILE's content as the secret's current value, idempotently.
put_secret() {
  local id=$1 file=$2 request
  request=$(sha256sum "$file" | cut -c1-64)
  aws secretsmanager put-secret-value --region "$region" --secret-id "$id" \
    --client-request-token "$request" --secret-string "file://$file" >/dev/null
}

instance_id=$(imds instance-id)
region=$(imds placement/region)
private_ip=$(imds local-ipv4)
log "master $instance_id ($private_ip) of $SMARTSCALE_CLUSTER_ID, k3s $K3S_VERSION"

# 1. The agent token: only lets agents join (not servers); generated once.
install -d -m 0700 "$K3S_ETC"
if [ ! -s "$AGENT_TOKEN_FILE" ]; then
  (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$AGENT_TOKEN_FILE")
  log "generated a new agent token"
fi
chmod 0600 "$AGENT_TOKEN_FILE"

# 2. K3s server. The control-plane taint keeps application pods off the master; the
#    monitoring pods tolerate it.
cat >"$K3S_CONFIG" <<YAML
write-kubeconfig-mode: "0600"
agent-token-file: $AGENT_TOKEN_FILE
node-ip: $private_ip
tls-san:
  - $private_ip
node-taint:
  - node-role.kubernetes.io/control-plane:NoSchedule
node-label:
  - smartscale.io/cluster=$SMARTSCALE_CLUSTER_ID
  - smartscale.io/instance-id=$instance_id
disable:
  - traefik
YAML
chmod 0600 "$K3S_CONFIG"
installed=""
if [ -x "$K3S_BIN" ]; then
  installed=$("$K3S_BIN" --version 2>/dev/null | awk 'NR==1 {print $3}' || true)
fi
if [ "$installed" != "$K3S_VERSION" ] || ! systemctl is-active --quiet k3s; then
  installer=$(mktemp)
  curl -sSfL --retry 5 -o "$installer" "https://raw.githubusercontent.com/k3s-io/k3s/${K3S_VERSION//+/%2B}/install.sh"
  INSTALL_K3S_VERSION="$K3S_VERSION" INSTALL_K3S_SKIP_SELINUX_RPM=true INSTALL_K3S_EXEC="server" sh "$installer"
  rm -f "$installer"
else
  log "k3s $installed already running"
fi
node_ready() {
  "${KUBECTL[@]}" get node "$(hostname)" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}
retry 60 node_ready || { log "the master node did not become Ready"; exit 1; }
"${KUBECTL[@]}" taint nodes "$(hostname)" node-role.kubernetes.io/control-plane=:NoSchedule --overwrite
log "k3s server Ready and tainted"

# 3. Publish the agent token for the workers (this role may write, never read it).
retry 30 put_secret "$SMARTSCALE_TOKEN_SECRET_ID" "$AGENT_TOKEN_FILE" ||
  { log "could not store the agent token in $SMARTSCALE_TOKEN_SECRET_ID"; exit 1; }
log "agent token stored in $SMARTSCALE_TOKEN_SECRET_ID"

# 4. Monitoring stack and the autoscaler's RBAC, through K3s's auto-deploy directory.
install -d -m 0700 "$AUTODEPLOY"
while IFS= read -r -d '' f; do
  rel=${f#"$MANIFEST_DIR"/}
  dest="$AUTODEPLOY/smartscale-${rel//\//-}"
  if grep -q SMARTSCALE_ALERT_TOPIC_ARN "$f"; then
    # Alertmanager: only with an alert topic, whose ARN (and region) it publishes to
    if [ -z "$SMARTSCALE_ALERT_TOPIC_ARN" ]; then
      log "no SMARTSCALE_ALERT_TOPIC_ARN: $rel not installed, the schedule alone ticks"
      continue
    fi
    alert_region=$(cut -d: -f4 <<<"$SMARTSCALE_ALERT_TOPIC_ARN")
    sed -e "s|SMARTSCALE_ALERT_TOPIC_ARN|$SMARTSCALE_ALERT_TOPIC_ARN|g" -e "s|SMARTSCALE_REGION|$alert_region|g" "$f" >"$dest.tmp"
    chmod 0600 "$dest.tmp" && mv "$dest.tmp" "$dest"
    continue
  fi
  install -m 0600 "$f" "$dest"
done < <(find "$MANIFEST_DIR" -type f \( -name '*.yaml' -o -name '*.yml' \) -print0)
deployed() { "${KUBECTL[@]}" -n monitoring get deployment prometheus >/dev/null 2>&1; }
retry 30 deployed || { log "the monitoring manifests were not applied"; exit 1; }
"${KUBECTL[@]}" -n monitoring rollout status deployment/prometheus --timeout=300s
"${KUBECTL[@]}" -n monitoring rollout status deployment/kube-state-metrics --timeout=300s
log "monitoring stack running; Prometheus on http://$private_ip:30090"

# 5. The autoscaler's kubeconfig: its service-account token, the cluster CA and the API at
#    this node's private IP (in the server certificate's SANs), for the Lambda only.
if [ -n "$SMARTSCALE_KUBECONFIG_SECRET_ID" ]; then
  sa_token() {
    "${KUBECTL[@]}" -n smartscale get secret smartscale-autoscaler-token -o jsonpath='{.data.token}' 2>/dev/null | grep -q .
  }
  retry 30 sa_token || { log "the autoscaler's service-account token was not issued"; exit 1; }
  kubeconfig=$(mktemp)
  chmod 0600 "$kubeconfig"
  python3 - "$private_ip" "$SMARTSCALE_CLUSTER_ID" "$K3S_BIN" >"$kubeconfig" <<'PY'
import base64, json, subprocess, sys

def field(path):
    return subprocess.run([sys.argv[3], "kubectl", "-n", "smartscale", "get", "secret",
                           "smartscale-autoscaler-token", "-o", "jsonpath={.data." + path + "}"],
                          check=True, capture_output=True, text=True).stdout.strip()

ip, cluster = sys.argv[1], sys.argv[2]
print(json.dumps({
    "apiVersion": "v1", "kind": "Config", "current-context": "smartscale",
    "clusters": [{"name": cluster, "cluster": {"server": "https://%s:6443" % ip,
                                               "certificate-authority-data": field("ca\\.crt")}}],
    "users": [{"name": "smartscale-autoscaler", "user": {"token": base64.b64decode(field("token")).decode()}}],
    "contexts": [{"name": "smartscale", "context": {"cluster": cluster, "user": "smartscale-autoscaler"}}],
}, sort_keys=True))
PY
  retry 30 put_secret "$SMARTSCALE_KUBECONFIG_SECRET_ID" "$kubeconfig" ||
    { rm -f "$kubeconfig"; log "could not store the autoscaler's kubeconfig"; exit 1; }
  rm -f "$kubeconfig"
  log "autoscaler kubeconfig stored in $SMARTSCALE_KUBECONFIG_SECRET_ID"
fi
log "master setup complete"
