#!/usr/bin/env bash
# Builds the bbolt format oracle (tests/oracle/bboltoracle) into OUTDIR/bboltoracle, offline,
# against Debian's go.etcd.io/bbolt 1.3.6 in /usr/share/gocode (package
# golang-github-coreos-bbolt-dev). The Go build cache goes to OUTDIR/go-cache unless GOCACHE is
# already set, so the build needs neither $HOME nor a network.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
outdir=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
gopath=${ORACLE_GOPATH:-/usr/share/gocode}

if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: 'go' not found; install golang-go (1.19) to build the bbolt oracle" >&2
    exit 1
fi
if [ ! -f "$gopath/src/go.etcd.io/bbolt/db.go" ]; then
    echo "build.sh: bbolt sources not found under $gopath/src/go.etcd.io/bbolt;" \
        "install golang-github-coreos-bbolt-dev" >&2
    exit 1
fi

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
export GOPATH=$gopath GO111MODULE=off GOFLAGS= GOPROXY=off CGO_ENABLED=0
export GOCACHE=${GOCACHE:-$outdir/go-cache}
cd "$here"
# Build to a temporary name and rename, so a concurrent reader never sees a half-written binary.
go build -o "$outdir/bboltoracle.tmp.$$" ./bboltoracle
mv -f "$outdir/bboltoracle.tmp.$$" "$outdir/bboltoracle"
