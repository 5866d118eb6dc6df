#!/usr/bin/env bash
# The project's one test command (named in README.md, run by .ci/run): formatting, lints, that
# the benchmarks compile, then every test in release mode. The interoperability tests need Go
# 1.19 with bbolt 1.3.6 sources and etcd/etcdctl 3.4.23 installed (.ci/run installs them on
# Debian); without them those tests fail, they never skip. Needs no network beyond crates.io.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

run() {
    echo "+ $*" >&2
    "$@"
}

run cargo fmt --all -- --check
run cargo clippy --workspace --all-targets -- -D warnings
run cargo bench --workspace --no-run
run cargo test --workspace --release
