#!/usr/bin/env bash
# Installs Debian's chromium (headless rendering of `sim run --report` pages, see
# scripts/render-report.sh). Idempotent; needs root (apt).
set -euo pipefail
if command -v chromium >/dev/null; then
  echo "install-chromium: $(chromium --version) already installed"
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
chromium --version
