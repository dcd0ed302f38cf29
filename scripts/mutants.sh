#!/usr/bin/env bash
# Mutation testing: how many generated mutants of the engine's handle, cache, streams,
# shutdown, in-memory backend, remote client and worker, and of ΔBtail's key history and tree
# diff does the simulator kill? docs/mutants.md has the method and the last run's results.
#
#   bash scripts/mutants.sh [SHARD [NAMES_FILE]]
#
# SHARD is K/N of the mutants .cargo/mutants.toml selects, dealt round-robin (default 2/6: 108
# mutants spread over the nine files). NAMES_FILE, one mutant name a line as `cargo mutants
# --list` prints them (a missed.txt, say), restricts the run to those: re-running the
# survivors after closing a gap.
#
# Two passes over the sample, one mutant at a time, in place in this checkout (each mutant is
# written into the source, built incrementally in the usual target dir, and the original
# restored; engine/src and btail/src must be clean before the run):
#   1. the main job (`sim explore all --seeds 200`: the ignored `main_job` test of the sim
#      crate) on the `mutants` profile: the cheapest test that can kill a mutant;
#   2. only for the mutants the main job missed: the tests of the mutated crate (engine's or
#      btail's unit and integration tests, with the `planted-bugs` feature as in the
#      workspace's tests). Not the sim crate's tests: they pin trace digests,
#      which any change of behaviour moves, bug or not, so they would "kill" every mutant
#      without saying anything about finding bugs.
# A mutant is killed when either pass fails or times out. The outcome files of both passes
# are left in $MUTANTS_OUT (default target/mutants-out) and the script prints the score
# (scripts/mutants-summary.py).
#
# Not part of .ci/run: on 2 shared cores pass 1 takes 20-40 s a mutant and pass 2 a minute or
# more, so the default sample takes one to two hours. Environment: MUTANTS_OUT, the output
# dir; MUTANTS_TIMEOUT, the seconds one test run may take (default 180); MUTANTS_RESUME=pass2,
# skip pass 1 (its outcomes are already in $MUTANTS_OUT/pass1); and cargo's own
# (CARGO_TARGET_DIR; CARGO_BUILD_JOBS=1 on a shared machine).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
shard="${1:-2/6}"
names="${2:-}"
out="${MUTANTS_OUT:-$root/target/mutants-out}"
timeout="${MUTANTS_TIMEOUT:-180}"

bash scripts/install-tools.sh

if ! git diff --quiet -- engine/src btail/src; then
  echo "mutants.sh: engine/src or btail/src has uncommitted changes; the run mutates them in place" >&2
  exit 2
fi

# Runs cargo-mutants (the files and exclusions are in .cargo/mutants.toml).
mutants() {
  nice -n 19 cargo mutants --workspace --in-place --timeout "$timeout" --build-timeout 900 "$@"
}

# Prints each mutant name of a file as one anchored regex for --re (nothing without a file).
name_args() {
  [ -n "$1" ] || return 0
  python3 -c '
import re, sys
for line in open(sys.argv[1], encoding="utf-8"):
    if line.strip():
        print("--re=^" + re.escape(line.strip()).replace("\\ ", " ") + "$")
' "$1"
}

# cargo-mutants exits 2 when a mutant is missed and 3 on timeouts: results, not errors.
check_status() {
  if [ "$2" -ne 0 ] && [ "$2" -ne 2 ] && [ "$2" -ne 3 ]; then
    echo "mutants.sh: $1 failed (exit $2)" >&2
    exit "$2"
  fi
}

mkdir -p "$out"
# The sample: the shard, or the mutants a file names. cargo-mutants shards after filtering, so
# a list of names is never sharded again (nor are pass 2's survivors).
if [ -n "$names" ]; then
  mapfile -t selected < <(name_args "$names")
  if [ "${#selected[@]}" -eq 0 ]; then
    echo "mutants.sh: $names names no mutant" >&2
    exit 2
  fi
else
  selected=(--shard "$shard" --sharding round-robin)
fi
if [ "${MUTANTS_RESUME:-}" != pass2 ]; then
  echo "=== pass 1: the main job, shard $shard"
  # The unmutated baseline first, by hand: cargo-mutants' own baseline would build and test
  # the mutated packages (engine, btail) instead of the sim test, which they do not have.
  nice -n 19 cargo test --profile mutants -p sim --test main_job -- --ignored
  # --cargo-arg narrows the build to the one test target; cargo-mutants takes the first `--`
  # as its own separator, so the second one reaches cargo and `--ignored` the test binary.
  status=0
  mutants --output "$out/pass1" --baseline skip --test-package sim "${selected[@]}" \
    --cargo-arg=--test=main_job -- -- --ignored || status=$?
  check_status "pass 1" "$status"
fi

mapfile -t survivors < <(name_args "$out/pass1/mutants.out/missed.txt")
rm -rf "$out/pass2"
if [ "${#survivors[@]}" -gt 0 ]; then
  echo "=== pass 2: the mutated crate's tests, for the ${#survivors[@]} survivors of pass 1"
  status=0
  # With the planted-bug switches compiled in, as `cargo test --workspace` builds engine and
  # btail (the sim crate asks for them): their tests of the switches run too.
  mutants --output "$out/pass2" --features planted-bugs "${survivors[@]}" || status=$?
  check_status "pass 2" "$status"
fi

if ! git diff --quiet -- engine/src btail/src; then
  echo "mutants.sh: the sources were not restored after the run" >&2
  exit 1
fi
python3 scripts/mutants-summary.py "$out"
