#!/usr/bin/env bash
# Installs what the test suite needs, idempotently, on a fresh Debian machine (as root):
#   prometheus + promtool and shellcheck from Debian, dynalite from npm into .tools/,
#   the AWS Lambda Runtime Interface Emulator from the Go module proxy into .tools/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$PWD/.tools"
mkdir -p "$tools/bin"

need_apt=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v zip >/dev/null 2>&1 || need_apt+=(zip)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "tools: installing ${need_apt[*]} (apt)" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -f "$tools/node_modules/dynalite/cli.js" ]; then
  echo "tools: installing dynalite (npm)" >&2
  (cd "$tools" && npm install --no-audit --no-fund --silent dynalite@4 >/dev/null)
fi

if [ ! -x "$tools/bin/aws-lambda-rie" ]; then
  echo "tools: installing aws-lambda-rie (go install)" >&2
  GOBIN="$tools/bin" go install "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@${RIE_VERSION:-v0.0.0-20261030222936-bef5c4ba774d}"
fi
echo "tools: ready (prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'), dynalite, aws-lambda-rie)" >&2
