#!/usr/bin/env bash
# bench.sh runs jailsync's benchmarks (make bench), each against a reference
# measured in the same run, and prints their figures. Raw `go test -bench`
# output goes to bin/bench/go-bench.txt.
#
#   BSM decode      records/s and allocs per record (one core, GOMAXPROCS=1)
#   fanotify        close-to-ready-change latency p50/p99, inotify as reference
#   scanner         a tree of JAILSYNC_BENCH_FILES (default 1,000,000) files on
#                   tmpfs: steady-state scan time and peak RSS, find(1) as reference
#   replication     1 writer and 3 receivers on loopback: burst, 100 x 1 MiB,
#                   1 x 256 MiB, single-file latency (each file 50 ms after
#                   the previous one arrived, and back to back) and the rename
#                   of a directory of 10,000 x 4 KiB that every peer holds
#                   (lower bound: rsync -a --delete); jailsync against the
#                   lower bound (one rsync -a per peer after the writes), the
#                   floors of jailsync's rsync interface (its --files-from
#                   client on the lower bound's schedule, and the same with
#                   clients started ahead), the
#                   old script (emulated), lsyncd, clsync and Syncthing from
#                   Debian (installed here when missing). JAILSYNC_BENCH_RUNS
#                   (default 3) runs per figure; JAILSYNC_BENCH_ONLY=replication
#                   skips the others. About 85 minutes on 2 cores (the
#                   twenty-ninth full run), most of it the old script, lsyncd,
#                   clsync and Syncthing.
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
if [[ "${JAILSYNC_BENCH_ONLY:-}" != replication ]]; then
  run env GOMAXPROCS=1 go test -run '^$' -bench 'BenchmarkDecode$' -benchmem -count 3 ./nodeagent/bsm/
  run go test -run '^$' -bench 'BenchmarkCloseToChange$' -count 3 ./nodeagent/source/fanotify/
  run go test -run '^$' -bench 'BenchmarkScan$' -benchtime 3x -count 1 -timeout 60m ./nodeagent/scan/
fi

# The references come from Debian's packages.
missing=()
for tool in rsync lsyncd clsync syncthing; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "[bench] installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi

# Replication: jailsync against the references on the same workloads
# (hack/bench/replication; JSON in bin/bench/replication.json).
go build -o bin/nodeagent ./cmd/nodeagent
run go run ./hack/bench/replication -nodeagent bin/nodeagent -json "$out/replication.json" -runs "${JAILSYNC_BENCH_RUNS:-3}"

echo
echo "Raw results: $raw"
