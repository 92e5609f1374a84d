#!/usr/bin/env bash
# setup-envtest.sh builds the envtest control plane (kube-apiserver, etcd) and a
# matching kubectl from the Go module proxy, because no release binaries can be
# downloaded here. Results go to bin/k8s/$K8S_VERSION/; nothing is rebuilt when
# all three binaries are already there.
#
# kube-apiserver and kubectl: a throwaway module under bin/.build that requires
# k8s.io/kubernetes with every k8s.io/* staging module (read from that module's
# own go.mod, "=> ./staging/src/...") replaced by its v0.<minor>.<patch> release.
# etcd: go.etcd.io/etcd/server/v3 with a main that calls etcdmain.Main.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/bin/k8s/$K8S_VERSION"
build="$root/bin/.build"
staging_version="v0.${K8S_VERSION#*.}"

if [[ -x "$dest/kube-apiserver" && -x "$dest/etcd" && -x "$dest/kubectl" ]]; then
  exit 0
fi
mkdir -p "$dest" "$build"
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0
say() { printf '[setup-envtest] %s\n' "$*" >&2; }
start=$SECONDS

if [[ ! -x "$dest/kube-apiserver" || ! -x "$dest/kubectl" ]]; then
  mod="$build/kubernetes-$K8S_VERSION"
  mkdir -p "$mod"
  say "resolving k8s.io/kubernetes v$K8S_VERSION and its staging modules ($staging_version)"
  gomod=$(cd "$mod" && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  {
    echo "module jailsync.local/envtest-kubernetes"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"$staging_version"'#p' "$gomod"
    echo ")"
  } >"$mod/go.mod"
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (cd "$mod" && go mod tidy -e >/dev/null 2>&1 || true)
  (cd "$mod" && go get "k8s.io/kubernetes@v$K8S_VERSION" >/dev/null)
  minor=${K8S_VERSION#*.}; minor=${minor%%.*}
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  say "building kube-apiserver v$K8S_VERSION (a cold build takes about 6 minutes on 2 cores)"
  (cd "$mod" && go build -trimpath -ldflags "$ldflags" -o "$dest/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
  say "building kubectl v$K8S_VERSION"
  (cd "$mod" && go build -trimpath -ldflags "$ldflags" -o "$dest/kubectl" k8s.io/kubernetes/cmd/kubectl)
fi

if [[ ! -x "$dest/etcd" ]]; then
  mod="$build/etcd-$ETCD_VERSION"
  mkdir -p "$mod"
  say "building etcd $ETCD_VERSION (about 1 minute)"
  cat >"$mod/go.mod" <<GOMOD
module jailsync.local/envtest-etcd

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  cat >"$mod/main.go" <<'GO'
// Command etcd is etcd's own main, built from the module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$mod" && go mod tidy >/dev/null && go build -trimpath -ldflags "-s -w" -o "$dest/etcd" .)
fi
say "control plane ready in $dest ($((SECONDS - start))s)"
