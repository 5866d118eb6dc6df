#!/usr/bin/env bash
# Builds one of the project's Go test oracles offline against the Go sources Debian installs in
# /usr/share/gocode (bbolt 1.3.6, etcd 3.4.23), with GOPATH mode and no network.
#
#   scripts/go-build-offline.sh SRC_DIR OUT_FILE [REQUIRED_IMPORT_PATH ...]
#
# SRC_DIR is a `package main` directory; OUT_FILE the binary to write (built under a temporary
# name and renamed, so a concurrent reader never runs a half-written file). Each
# REQUIRED_IMPORT_PATH (e.g. go.etcd.io/bbolt) must exist under GOPATH/src, else the script
# fails naming the package to install. Go's build cache goes next to OUT_FILE unless GOCACHE is
# set, so neither $HOME nor a network is needed. ORACLE_GOPATH overrides /usr/share/gocode.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 SRC_DIR OUT_FILE [REQUIRED_IMPORT_PATH ...]" >&2
    exit 2
fi
src=$1
out=$2
shift 2
gopath=${ORACLE_GOPATH:-/usr/share/gocode}

if ! command -v go >/dev/null 2>&1; then
    echo "go-build-offline: 'go' not found; install golang-go (1.19)" >&2
    exit 1
fi
for import_path in "$@"; do
    if [ ! -d "$gopath/src/$import_path" ]; then
        echo "go-build-offline: $import_path not found under $gopath/src; install" \
            "golang-github-coreos-bbolt-dev and golang-etcd-server-dev (.ci/run does)" >&2
        exit 1
    fi
done

outdir=$(dirname "$out")
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
name=$(basename "$out")
export GOPATH=$gopath GO111MODULE=off GOFLAGS= GOPROXY=off CGO_ENABLED=0
export GOCACHE=${GOCACHE:-$outdir/go-cache}
cd "$src"
go build -o "$outdir/$name.tmp.$$" .
mv -f "$outdir/$name.tmp.$$" "$outdir/$name"
