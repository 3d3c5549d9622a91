#!/bin/bash
# SmartScale worker user data: joins this EC2 instance to the K3s cluster as an agent.
#
# The deploy program (deploy/cluster.go) inserts these settings right after the shebang line:
#   SMARTSCALE_CLUSTER_ID       the cluster id, also the value of the smartscale.io/cluster tag
#   SMARTSCALE_TOKEN_SECRET_ID  ARN of the Secrets Manager secret holding the K3s agent token
#   SMARTSCALE_LOG_GROUP        CloudWatch Logs group this script ships its log to
#   K3S_VERSION                 the K3s release, the same as the master's
# The agent token itself is never in user data: it is fetched here, with the instance role,
# which may read that one secret and nothing else.
#
# Idempotent: a second run on a node whose k3s-agent is already active does nothing. Any
# failure exits non-zero (cloud-init marks the boot failed), prints the failing line to the
# console and ships the log to CloudWatch. The autoscaler terminates a worker that never
# becomes Ready within its node-ready timeout.
set -euo pipefail

: "${SMARTSCALE_CLUSTER_ID:?SMARTSCALE_CLUSTER_ID is not set}"
: "${SMARTSCALE_TOKEN_SECRET_ID:?SMARTSCALE_TOKEN_SECRET_ID is not set}"
: "${SMARTSCALE_LOG_GROUP:=/smartscale/${SMARTSCALE_CLUSTER_ID}/nodes}"
: "${K3S_VERSION:=v1.33.1+k3s1}"
: "${SMARTSCALE_WAIT_TRIES:=60}" # bounded waits: tries x 10 s
LOG_FILE=${SMARTSCALE_WORKER_LOG:-/var/log/smartscale-worker.log}
TOKEN_FILE=${SMARTSCALE_TOKEN_FILE:-/etc/rancher/k3s/agent-token}

mkdir -p "$(dirname "$LOG_FILE")"
exec > >(tee -a "$LOG_FILE") 2>&1

log() { printf '%s smartscale-worker: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

IMDS=http://169.254.169.254/latest
imds_token=""
# imds GETs a metadata path with an IMDSv2 session token (IMDSv1 is disabled on workers).
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
# ship_logs copies the log file to CloudWatch Logs, one event per line (best effort).
# shellcheck disable=SC2317 # called from the EXIT trap
ship_logs() {
  [ -n "$instance_id" ] && [ -n "$region" ] || return 0
  command -v python3 >/dev/null 2>&1 || return 0
  local events
  events=$(mktemp)
  python3 - "$LOG_FILE" >"$events" <<'PY' || return 0
import json, sys, time
now = int(time.time() * 1000)
lines = open(sys.argv[1], errors="replace").read().splitlines()[-5000:]
print(json.dumps([{"timestamp": now, "message": l or " "} for l in lines]))
PY
  aws logs create-log-stream --region "$region" --log-group-name "$SMARTSCALE_LOG_GROUP" \
    --log-stream-name "$instance_id" >/dev/null 2>&1 || true
  aws logs put-log-events --region "$region" --log-group-name "$SMARTSCALE_LOG_GROUP" \
    --log-stream-name "$instance_id" --log-events "file://$events" >/dev/null 2>&1 || true
  rm -f "$events"
}

# shellcheck disable=SC2317 # the EXIT trap
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    log "FAILED (exit $rc): worker did not join cluster $SMARTSCALE_CLUSTER_ID; see $LOG_FILE"
  fi
  ship_logs
  exit "$rc"
}
trap on_exit EXIT
trap 'log "error at line $LINENO: $BASH_COMMAND"' ERR

instance_id=$(imds instance-id)
region=$(imds placement/region)
az=$(imds placement/availability-zone)
log "instance $instance_id in $az, cluster $SMARTSCALE_CLUSTER_ID, k3s $K3S_VERSION"

if systemctl is-active --quiet k3s-agent 2>/dev/null; then
  log "k3s-agent already active: nothing to do"
  exit 0
fi

# The master: the running instance tagged Role=k3s-master in this cluster.
master_ip=""
for _ in $(seq 1 "$SMARTSCALE_WAIT_TRIES"); do
  master_ip=$(aws ec2 describe-instances --region "$region" \
    --filters "Name=tag:Role,Values=k3s-master" \
    "Name=tag:smartscale.io/cluster,Values=$SMARTSCALE_CLUSTER_ID" \
    "Name=instance-state-name,Values=running" \
    --query 'Reservations[].Instances[].PrivateIpAddress' --output text 2>/dev/null || true)
  # exactly one address expected; "None" or several words means not (yet) resolvable
  if [[ "$master_ip" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    break
  fi
  master_ip=""
  sleep 10
done
if [ -z "$master_ip" ]; then
  log "could not resolve exactly one running k3s-master for cluster $SMARTSCALE_CLUSTER_ID"
  exit 1
fi
log "master at $master_ip"

# The agent token, written by the master's setup script; wait for it on a fresh cluster.
install -d -m 0700 "$(dirname "$TOKEN_FILE")"
umask 077
got_token=false
for _ in $(seq 1 "$SMARTSCALE_WAIT_TRIES"); do
  if aws secretsmanager get-secret-value --region "$region" \
    --secret-id "$SMARTSCALE_TOKEN_SECRET_ID" --query SecretString --output text \
    >"$TOKEN_FILE.tmp" 2>/dev/null && [ -s "$TOKEN_FILE.tmp" ]; then
    mv -f "$TOKEN_FILE.tmp" "$TOKEN_FILE"
    got_token=true
    break
  fi
  sleep 10
done
rm -f "$TOKEN_FILE.tmp"
if [ "$got_token" != true ]; then
  log "could not read the agent token from $SMARTSCALE_TOKEN_SECRET_ID"
  exit 1
fi
umask 022

# Wait for the API server (its /cacerts endpoint needs no credentials).
api_up=false
for _ in $(seq 1 "$SMARTSCALE_WAIT_TRIES"); do
  if curl -sk --max-time 5 -o /dev/null "https://$master_ip:6443/cacerts"; then
    api_up=true
    break
  fi
  sleep 10
done
if [ "$api_up" != true ]; then
  log "K3s API at $master_ip:6443 not reachable (security group 6443/tcp from workers?)"
  exit 1
fi

# Install and join. The installer is pinned to the release's own install.sh; Amazon Linux
# 2023 runs SELinux permissive and has no k3s-selinux package, so the RPM step is skipped.
installer=$(mktemp)
curl -sSfL --retry 5 -o "$installer" "https://raw.githubusercontent.com/k3s-io/k3s/${K3S_VERSION//+/%2B}/install.sh"
INSTALL_K3S_VERSION="$K3S_VERSION" \
  INSTALL_K3S_SKIP_SELINUX_RPM=true \
  K3S_URL="https://$master_ip:6443" \
  K3S_TOKEN_FILE="$TOKEN_FILE" \
  INSTALL_K3S_EXEC="agent --node-label smartscale.io/instance-id=$instance_id --node-label smartscale.io/cluster=$SMARTSCALE_CLUSTER_ID --kubelet-arg=provider-id=aws:///$az/$instance_id" \
  sh "$installer"
rm -f "$installer"

for _ in $(seq 1 "$SMARTSCALE_WAIT_TRIES"); do
  if systemctl is-active --quiet k3s-agent; then
    log "joined: k3s-agent active on $instance_id"
    exit 0
  fi
  sleep 10
done
log "k3s-agent did not become active"
exit 1
