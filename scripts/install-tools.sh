#!/usr/bin/env bash
# Installs the developer tools this repository's scripts use, at pinned versions, from
# crates.io. Idempotent: a tool already installed at its pinned version is left alone, so the
# script is cheap to run before every use (scripts/mutants.sh does).
#
#   bash scripts/install-tools.sh
set -euo pipefail

# tool  version  binary (as `cargo install --list` names it)
TOOLS=(
  "cargo-mutants 27.1.0 cargo-mutants"
  # Runs on nightly (`cargo +nightly fuzz`); installs with the default toolchain.
  "cargo-fuzz 0.13.2 cargo-fuzz"
)

installed="$(cargo install --list)"
for entry in "${TOOLS[@]}"; do
  read -r crate version binary <<<"$entry"
  if grep -q "^${crate} v${version}:" <<<"$installed"; then
    echo "install-tools: ${crate} ${version} already installed"
    continue
  fi
  echo "install-tools: installing ${crate} ${version}"
  # --locked: the tool's own Cargo.lock, so the same version always builds the same way.
  # The build never uses the workspace's target dir (a tool is not part of the workspace).
  env -u CARGO_TARGET_DIR CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" \
    nice -n 19 cargo install --locked "${crate}@${version}"
  command -v "${binary}" >/dev/null
done
