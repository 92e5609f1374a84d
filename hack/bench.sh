#!/usr/bin/env bash
# bench.sh runs jailsync's benchmarks (make bench), each against a reference
# measured in the same run, and prints their figures. Raw `go test -bench`
# output goes to bin/bench/go-bench.txt.
#
#   BSM decode      records/s and allocs per record (one core, GOMAXPROCS=1)
#   fanotify        close-to-ready-change latency p50/p99, inotify as reference
#   scanner         a tree of JAILSYNC_BENCH_FILES (default 1,000,000) files on
#                   tmpfs: steady-state scan time and peak RSS, find(1) as reference
#
# Needs root (tmpfs mounts, fanotify). Timing goals live here, never in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bin/bench
mkdir -p "$out"
raw="$out/go-bench.txt"
: >"$raw"

run() {
  echo "[bench] $*" >&2
  "$@" 2>&1 | tee -a "$raw"
}
run env GOMAXPROCS=1 go test -run '^$' -bench 'BenchmarkDecode$' -benchmem -count 3 ./nodeagent/bsm/
run go test -run '^$' -bench 'BenchmarkCloseToChange$' -count 3 ./nodeagent/source/fanotify/
run go test -run '^$' -bench 'BenchmarkScan$' -benchtime 3x -count 1 -timeout 60m ./nodeagent/scan/

echo
echo "Raw results: $raw"
