#!/usr/bin/env bash
# Install spoco-zoo (CPU torch pin first), then lint, format check, type check and the test suite
# (tests/ and the >>> examples in spoco_zoo's docstrings). Any failure fails the script.
# Arguments are passed to pytest, e.g. `bash scripts/test.sh -x tests/test_export.py`.
set -euo pipefail
cd "$(dirname "$0")/.."
# the napari widget tests need a display: without one, run everything under a virtual X server
if [ -z "${DISPLAY:-}" ] && [ -z "${SPOCO_XVFB:-}" ] && command -v xvfb-run >/dev/null 2>&1; then
  SPOCO_XVFB=1 exec xvfb-run -a bash "$0" "$@"
fi
. scripts/_env.sh
echo "== ruff check" && ruff check .
echo "== ruff format --check" && ruff format --check .
echo "== mypy" && mypy
echo "== pytest" && python -m pytest -q -ra "$@"
