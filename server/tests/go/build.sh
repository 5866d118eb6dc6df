#!/usr/bin/env bash
# Builds the etcd wire oracle (tests/go/wireoracle) into OUTDIR/wireoracle, offline, against
# Debian's etcd 3.4.23 Go sources in /usr/share/gocode (package golang-etcd-server-dev). The Go
# build cache goes to OUTDIR/go-cache unless GOCACHE is already set, so the build needs neither
# $HOME nor a network.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
outdir=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
gopath=${ORACLE_GOPATH:-/usr/share/gocode}

if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: 'go' not found; install golang-go (1.19) to build the etcd wire oracle" >&2
    exit 1
fi
if [ ! -f "$gopath/src/go.etcd.io/etcd/etcdserver/etcdserverpb/rpc.pb.go" ]; then
    echo "build.sh: etcd sources not found under $gopath/src/go.etcd.io/etcd;" \
        "install golang-etcd-server-dev" >&2
    exit 1
fi

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
export GOPATH=$gopath GO111MODULE=off GOFLAGS= GOPROXY=off CGO_ENABLED=0
export GOCACHE=${GOCACHE:-$outdir/go-cache}
cd "$here"
# Build to a temporary name and rename, so a concurrent reader never sees a half-written binary.
go build -o "$outdir/wireoracle.tmp.$$" ./wireoracle
mv -f "$outdir/wireoracle.tmp.$$" "$outdir/wireoracle"
