#!/usr/bin/env bash
# The project's one test command (named in README.md, run by .ci/run): formatting, lints, that
# the benchmarks compile, then every test in release mode. The interoperability tests need Go
# 1.19 with bbolt 1.3.6 sources and etcd/etcdctl 3.4.23 installed (.ci/run installs them on
# Debian); without them those tests fail, they never skip. Needs no network beyond crates.io.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# On a fresh Debian machine, install what the interoperability tests drive (CI's .ci/run has
# already done this; a developer's first run does it here).
need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -f /usr/share/gocode/src/go.etcd.io/bbolt/db.go ] || need+=(golang-github-coreos-bbolt-dev)
[ -d /usr/share/gocode/src/go.etcd.io/etcd ] || need+=(golang-etcd-server-dev)
if [ ${#need[@]} -gt 0 ]; then
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    echo "+ installing ${need[*]}" >&2
    "${sudo_cmd[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y "${need[@]}"
fi

run() {
    echo "+ $*" >&2
    "$@"
}

run cargo fmt --all -- --check
run cargo clippy --workspace --all-targets -- -D warnings
run cargo bench --workspace --no-run
run cargo test --workspace --release
