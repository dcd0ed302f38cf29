#!/usr/bin/env bash
# Runs `sim explore all --forever` for a while with stderr piped (as CI sees it), samples the
# process's resident memory, then interrupts it as a user's Ctrl-C would, and prints the RSS
# samples, the progress lines, and the summary. Memory must stay flat: passing runs leave only
# counters (README, "explore at scale").
#
#   bash scripts/forever-memory.sh [SECONDS=600] [JOBS=1] [SIM=target/sim/sim]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
jobs="${2:-1}"
sim="${3:-target/sim/sim}"
every=15

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$sim" explore all --forever --jobs "$jobs" >"$work/summary" 2>"$work/progress" &
pid=$!
echo "elapsed_s rss_kib"
for ((t = 0; t < seconds; t += every)); do
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo gone)
  echo "$t $rss"
  sleep "$every"
done
echo "$seconds $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")"
peak=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
kill -INT "$pid"
status=0
wait "$pid" || status=$?
echo "peak rss (VmHWM): $peak KiB; exit status after the interrupt: $status"
echo "--- progress (stderr, not a terminal)"
cat "$work/progress"
echo "--- summary (stdout)"
cat "$work/summary"
