#!/usr/bin/env bash
# Runs the `seeds` test target (sim/tests/seeds.rs: one case per scenario × chunk of seeds)
# as N cargo-nextest shards, one after another on this machine, and checks what a CI matrix
# relies on: every shard runs and passes, no case is in two shards, and the shards together
# are the whole list. SIM_SEEDS, SIM_SEED, SIM_CHUNK, SIM_SCENARIO and SIM_BUG choose the
# cases (see sim/src/explore/cases.rs).
#
#   SIM_SEEDS=200 bash scripts/seed-shards.sh 3
#
# Without cargo-nextest it says so and runs the whole list with libtest's own runner (cargo test),
# so the seeds still run.
set -euo pipefail
cd "$(dirname "$0")/.."
shards="${1:-2}"
profile=(--cargo-profile sim -p sim --test seeds)

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "seed-shards: cargo-nextest is not installed; running the seeds target unsharded with cargo test"
  cargo test --profile sim --locked -p sim --test seeds
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo nextest list --locked "${profile[@]}" --message-format oneline >"$work/all"
[ -s "$work/all" ] || { echo "seed-shards: the seeds target listed no case" >&2; exit 1; }
for k in $(seq 1 "$shards"); do
  cargo nextest list --locked "${profile[@]}" --partition "hash:$k/$shards" \
    --message-format oneline >"$work/shard-$k"
  cargo nextest run --locked "${profile[@]}" --partition "hash:$k/$shards" --no-fail-fast
done
sort "$work"/shard-* >"$work/union"
if [ -n "$(uniq -d "$work/union")" ]; then
  echo "seed-shards: cases in more than one shard:" >&2
  uniq -d "$work/union" >&2
  exit 1
fi
if ! diff <(sort "$work/all") "$work/union" >&2; then
  echo "seed-shards: the shards together are not the whole case list (diff above)" >&2
  exit 1
fi
echo "seed-shards: $(wc -l <"$work/all") cases in $shards shards, each case in exactly one, all passed"
