#!/usr/bin/env bash
# The long fuzzing campaign: every target of fuzz/ in turn for SECONDS each (default 1800, the
# issue's 30 minutes), on nightly with cargo-fuzz (scripts/install-tools.sh installs it). New
# corpus inputs land in fuzz/corpus/<target>/; minimize them before committing with
#   cargo +nightly fuzz cmin <target>
# A crash stops the campaign with the target's artifact in fuzz/artifacts/<target>/ (and its
# panic, the input as base64 and a replay command in the output, for a CI log); minimize
# it with `cargo +nightly fuzz tmin <target> <artifact>`, fix the code, and commit the
# minimized input under fuzz/regressions/<target>/ (the stable corpus test replays it).
# With FUZZ_SCRATCH_CORPUS=1 (CI) new inputs go to a temporary directory and the committed
# corpus is only read. Each target's last stats line (executions, exec/s) is printed at the end, for docs/fuzzing.md.
#
#   bash scripts/fuzz-campaign.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-1800}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
target_dir="${CARGO_TARGET_DIR:-$(pwd)/target}/fuzz-nightly"
logs="$(mktemp -d)"
started="$logs/started"
touch "$started"

# A crash is reported so that the log alone reproduces it (a CI machine's artifacts are gone
# once it ends): the panic's message, and each new crash input as base64 with the command that
# replays it.
crash_report() {
  local target="$1" input
  echo "$target: crash; the panic:" >&2
  awk '/panicked at|==ERROR/ { on = 1 } /^stack backtrace/ { exit } on && n++ < 12' "$logs/$target.log" >&2
  while IFS= read -r input; do
    echo "input $input (base64): $(base64 -w 0 "$input")" >&2
    echo "reproduce: echo '$(base64 -w 0 "$input")' | base64 -d > crash-input && (cd fuzz && cargo +nightly fuzz run $target ../crash-input)" >&2
  done < <(find "artifacts/$target" -type f -newer "$started" 2>/dev/null)
  echo "full log: $logs/$target.log" >&2
}
for target in "${targets[@]}"; do
  echo "=== $target: ${seconds}s"
  corpora=()
  if [ "${FUZZ_SCRATCH_CORPUS:-0}" = 1 ]; then
    mkdir -p "$logs/corpus-$target"
    corpora=("$logs/corpus-$target" "corpus/$target")
  fi
  # -malloc_limit_mb bounds any single allocation: a decoder that allocates an announced
  # length before its bytes arrive is a crash (the decoders' inputs are small; the redb and
  # engine targets open real stores).
  case "$target" in
    *_wire | topology | vectors) malloc_mb=8 ;;
    *) malloc_mb=512 ;;
  esac
  nice -n 10 cargo +nightly fuzz run --target-dir "$target_dir" "$target" "${corpora[@]}" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -malloc_limit_mb="$malloc_mb" \
    -print_final_stats=1 2>&1 | tee "$logs/$target.log" | grep -E "^#[0-9]+.*(pulse|DONE)|^stat::|ERROR|panicked" || true
  status="${PIPESTATUS[0]}"
  if grep -q "ERROR: libFuzzer\|panicked at\|==ERROR" "$logs/$target.log"; then
    crash_report "$target"
    exit 1
  fi
  # Anything else that stops cargo fuzz (a build error, a missing toolchain) is a failure too,
  # never a target that silently ran nothing.
  if [ "$status" != 0 ] || ! grep -q "^stat::number_of_executed_units" "$logs/$target.log"; then
    tail -n 30 "$logs/$target.log" >&2
    echo "$target: cargo fuzz failed (exit $status) without a fuzzing run; log: $logs/$target.log" >&2
    exit 1
  fi
done
echo
echo "target executions exec/s"
for target in "${targets[@]}"; do
  runs=$(grep -oE "^stat::number_of_executed_units: [0-9]+" "$logs/$target.log" | grep -oE "[0-9]+$" || echo "?")
  rate=$(grep -oE "exec/s: [0-9]+" "$logs/$target.log" | tail -1 | grep -oE "[0-9]+$" || echo "?")
  echo "$target $runs $rate"
done
