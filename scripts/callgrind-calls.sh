#!/usr/bin/env bash
# Instructions per `get_header` call (raw Mem backend, uncached handle, cached handle), counted
# by callgrind: repeatable on a loaded machine where wall time is not. Each kind runs with two
# call counts; the difference of the totals over the difference of the counts leaves setup out.
# Usage: scripts/callgrind-calls.sh [SMALL LARGE]
set -euo pipefail
small=${1:-2000}
large=${2:-12000}
cargo build --profile bench -p benches --example handle-calls --quiet
bin="${CARGO_TARGET_DIR:-target}/release/examples/handle-calls"
total() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for kind in raw uncached cached; do
    a=$(total "$kind" "$small")
    b=$(total "$kind" "$large")
    echo "$kind $(( (b - a) / (large - small) )) instructions/call"
done
