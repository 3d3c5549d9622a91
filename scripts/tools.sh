#!/usr/bin/env bash
# Installs what the test suite needs, idempotently, on a fresh Debian machine (as root):
#   prometheus + promtool, shellcheck and zip from Debian; dynalite from npm into .tools/;
#   from the Go module proxy into .tools/bin: the AWS Lambda Runtime Interface Emulator and a
#   Kubernetes control plane without containers (kube-apiserver, kube-controller-manager and
#   kube-scheduler built from k8s.io/kubernetes, kine for storage on SQLite, kwok for kubelets).
# The Go-built tools are built once per machine into a cache outside the repository
# (SMARTSCALE_TOOLS_CACHE, default ${XDG_CACHE_HOME:-$HOME/.cache}/smartscale/NAME-VERSION)
# and hard-linked (or copied) into .tools/bin, so a fresh clone on a warm machine installs in
# seconds; a cold machine spends about 18 CPU-minutes building them (about 10 minutes on two
# idle cores; 56% Kubernetes, 26% kine, 16% kwok).
set -euo pipefail
cd "$(dirname "$0")/.."

# The pinned versions, here and nowhere else. K8S_VERSION matches the k8s.io/client-go of go.mod
# (v0.X.Y <-> v1.X.Y).
RIE_VERSION=v0.0.0-20261030222936-bef5c4ba774d
K8S_VERSION=v1.37.2
KINE_VERSION=v0.17.5
KWOK_VERSION=v0.8.0

tools="$PWD/.tools"
cache="${SMARTSCALE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smartscale}"
mkdir -p "$tools/bin" "$cache"

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

# cached NAME VERSION BUILDER FILE...: puts FILEs of NAME at VERSION into .tools/bin, from the
# machine cache, running "BUILDER VERSION DIR" first when the cache lacks them. A stamp in
# .tools/bin records the version, so a changed pin replaces the files.
cached() {
  local name=$1 version=$2 builder=$3 f
  shift 3
  local dir="$cache/$name-$version" stamp="$tools/bin/.$name.version"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$version" ] && all_present "$tools/bin" "$@"; then
    return
  fi
  (
    # One build per machine at a time, whoever else runs this script.
    flock 9
    if ! all_present "$dir" "$@"; then
      echo "tools: building $name $version into $dir (once per machine)" >&2
      local tmp start=$SECONDS
      tmp=$(mktemp -d "$cache/.build-$name-XXXXXX")
      chmod 755 "$tmp"
      "$builder" "$version" "$tmp"
      rm -rf "$dir"
      mv "$tmp" "$dir"
      echo "tools: built $name $version in $((SECONDS - start)) s" >&2
    fi
  ) 9>"$cache/.$name.lock"
  for f; do
    mkdir -p "$(dirname "$tools/bin/$f")"
    rm -rf "${tools:?}/bin/$f"
    if [ -d "$dir/$f" ]; then
      cp -r "$dir/$f" "$tools/bin/$f"
    else
      ln -f "$dir/$f" "$tools/bin/$f" 2>/dev/null || cp "$dir/$f" "$tools/bin/$f"
    fi
  done
  echo "$version" >"$stamp"
}

all_present() {
  local dir=$1 f
  shift
  for f; do [ -e "$dir/$f" ] || return 1; done
}

build_rie() {
  GOBIN="$2" go install "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$1"
}

# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every k8s.io staging module
# with a ./staging directory. Build a writable copy whose go.mod asks the proxy for the
# published staging modules (v1.X.Y -> v0.X.Y) instead.
build_kubernetes() {
  local version=$1 out=$2 src work staging mod
  src=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$src" ] || { echo "tools: no source for k8s.io/kubernetes@$version" >&2; return 1; }
  work=$(mktemp -d)
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  rm -rf "$work/vendor" "$work/go.work" "$work/go.work.sum"
  staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\1#p' "$work/go.mod")
  sed -i '/=> \.\/staging\//d' "$work/go.mod"
  for mod in $staging; do
    sed -i -E "s#^([[:space:]]*${mod//./\\.}) v0\.0\.0([[:space:]]|\$)#\1 v0.${version#v1.}\2#" "$work/go.mod"
  done
  local ver=k8s.io/component-base/version
  (cd "$work" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
    -ldflags="-s -w -X $ver.gitVersion=$version -X $ver.gitMajor=1 -X $ver.gitMinor=$(echo "$version" | cut -d. -f2)" \
    -o "$out/" ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler)
  rm -rf "$work"
}

# kine keeps the apiserver's data in SQLite, which needs cgo.
build_kine() {
  CGO_ENABLED=1 GOBIN="$2" go install -trimpath -ldflags='-s -w' "github.com/k3s-io/kine@$1"
}

# kwok and its published stages (node initialise and heartbeat, pod lifecycle), concatenated
# into one config file for `kwok --config`.
build_kwok() {
  local src
  CGO_ENABLED=0 GOBIN="$2" go install -trimpath -ldflags='-s -w' "sigs.k8s.io/kwok/cmd/kwok@$1"
  src=$(go mod download -json "sigs.k8s.io/kwok@$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  local f first=1
  for f in "$src"/kustomize/stage/node/fast/node-initialize.yaml \
    "$src"/kustomize/stage/node/heartbeat/node-heartbeat.yaml \
    "$src"/kustomize/stage/pod/fast/pod-*.yaml; do
    [ -f "$f" ] || { echo "tools: kwok stage $f is missing" >&2; return 1; }
    [ "$first" = 1 ] || echo "---"
    first=0
    cat "$f"
  done >"$2/kwok-stages.yaml"
}

cached aws-lambda-rie "$RIE_VERSION" build_rie aws-lambda-rie
cached kubernetes "$K8S_VERSION" build_kubernetes kube-apiserver kube-controller-manager kube-scheduler
cached kine "$KINE_VERSION" build_kine kine
cached kwok "$KWOK_VERSION" build_kwok kwok kwok-stages.yaml

echo "tools: ready (prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'), dynalite, aws-lambda-rie, kubernetes $K8S_VERSION, kine $KINE_VERSION, kwok $KWOK_VERSION)" >&2
