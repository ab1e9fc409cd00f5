#!/usr/bin/env bash
# Render a run folder's report.html in headless Chromium (Debian: apt-get install -y chromium)
# and write a full-page screenshot next to it, to look at:
#   scripts/check_report_html.sh RUN_DIR [SCREENSHOT.png]
set -euo pipefail
run_dir=$(realpath "$1")
shot=${2:-$run_dir/report-screenshot.png}
test -f "$run_dir/report.html" || { echo "no report.html in $run_dir (kdistill report $1 builds it)" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --disable-sync --no-first-run --user-data-dir="$profile" --hide-scrollbars \
  --screenshot="$shot" --window-size=1200,"${HEIGHT:-6000}" "file://$run_dir/report.html" 2>/dev/null
echo "screenshot: $shot"
