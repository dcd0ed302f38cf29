#!/usr/bin/env bash
# Renders a `sim run --report` page in headless Chromium and checks it: a screenshot (PNG) to
# look at, and the page's text as the browser laid it out, which must hold the verdict, the
# timeline's headings and the reproduce command.
#
#   bash scripts/render-report.sh PAGE.html [SHOT.png]
set -euo pipefail
page="$1"
shot="${2:-${page%.html}.png}"
command -v chromium >/dev/null || {
  echo "render-report: no chromium; bash scripts/install-chromium.sh installs Debian's" >&2
  exit 1
}
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars)
chromium "${flags[@]}" --window-size=1280,1400 --screenshot="$shot" "file://$(realpath "$page")" 2>/dev/null
text=$(chromium "${flags[@]}" --dump-dom "file://$(realpath "$page")" 2>/dev/null)
for want in "The whole run" "Reproduce:" "cargo run --profile sim -p sim -- run" "<svg"; do
  grep -qF "$want" <<<"$text" || { echo "render-report: the rendered page lacks: $want" >&2; exit 1; }
done
[ -s "$shot" ] || { echo "render-report: no screenshot" >&2; exit 1; }
echo "render-report: $page renders; screenshot $shot"
