#!/usr/bin/env bash
# The figures of the README and the docs site, from a real run (never drawn by hand):
#   scripts/docs_figures.sh [RUN_DIR]
# runs `kdistill demo --seeds 3` into RUN_DIR (default: a new temporary folder), then copies its
# trade-off plot and training curves into docs/assets/ and screenshots its report.html there with
# headless Chromium (Debian: apt-get install -y chromium). Prints the results table for the README.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-$(mktemp -d)/demo}
kdistill=${KDISTILL:-.venv/bin/kdistill}
"$kdistill" demo --seeds 3 --out "$run" --quiet
mkdir -p docs/assets
cp "$run/tradeoff.png" docs/assets/tradeoff.png
cp "$run/curves-student-kd-t-2-unlabelled.png" docs/assets/curves.png
HEIGHT=1400 scripts/check_report_html.sh "$run" docs/assets/report.png
cat "$run/results.md"
